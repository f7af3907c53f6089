//! The `jit-emulator` binary as other tools drive it: one JSON line with exactly the
//! contract's keys once it accepts connections, then serving until stdin closes or
//! SIGTERM; a bad world file is a one-line error and exit code 2.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_jit-emulator");
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running binary whose first stdout line has been read.
struct Running {
    child: Child,
    info: Value,
    rest_of_stdout: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave an emulator behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(arguments: &[&str]) -> Running {
    let mut child = Command::new(BINARY)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the emulator binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (first_line_sender, first_line) = mpsc::channel();
    let (rest_sender, rest_of_stdout) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = first_line_sender.send(line);
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        let _ = rest_sender.send(rest);
    });
    let line = first_line
        .recv_timeout(STARTUP_TIMEOUT)
        .expect("the emulator printed its JSON line in time");
    assert!(line.ends_with('\n'), "one whole line: {line:?}");
    let info: Value = serde_json::from_str(&line).expect("the line is JSON");
    Running {
        child,
        info,
        rest_of_stdout,
    }
}

/// Waits (bounded) for the process to exit.
fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the emulator did not exit within {EXIT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn https_client(info: &Value) -> reqwest::Client {
    // reqwest carries no crypto provider of its own (see the root Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(info["ca_cert"].as_str().expect("ca_cert")).expect("ca.pem");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn it_prints_exactly_the_contract_and_exits_cleanly_when_stdin_closes() {
    let mut running = spawn(&[]);
    let info = running.info.clone();
    let keys: BTreeSet<&str> = info
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "arm_endpoint",
        "authority_host",
        "ca_cert",
        "tenant_id",
        "subscription_ids",
        "client_ip",
        "my_ip_url",
        "az_cli",
        "admin_endpoint",
        "ssh_identity",
        "service_principal",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    let principal_keys: BTreeSet<&str> = info["service_principal"]
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        principal_keys,
        ["client_id", "client_secret"].into_iter().collect()
    );

    let arm = info["arm_endpoint"].as_str().expect("arm_endpoint");
    let port_pattern = regex::Regex::new(r"^https://127\.0\.0\.1:\d+$").expect("regex");
    assert!(port_pattern.is_match(arm), "{arm}");
    assert_eq!(info["authority_host"], arm);
    assert_eq!(info["my_ip_url"], format!("{arm}/ip"));
    assert_eq!(info["admin_endpoint"], format!("{arm}/_emulator"));
    assert_eq!(info["client_ip"], "198.51.100.7");
    assert!(uuid::Uuid::parse_str(info["tenant_id"].as_str().expect("tenant_id")).is_ok());
    let subscriptions = info["subscription_ids"].as_array().expect("a list");
    assert!(subscriptions.len() >= 2, "{info}");

    for key in ["ca_cert", "az_cli", "ssh_identity"] {
        let path = std::path::Path::new(info[key].as_str().expect("a path"));
        assert!(
            path.is_absolute() && path.is_file(),
            "{key}: {}",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |key: &str| {
            std::fs::metadata(info[key].as_str().expect("a path"))
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ssh_identity"), 0o600);
        assert_eq!(mode("az_cli") & 0o111, 0o111, "az is executable");
    }

    let client = https_client(&info);
    let ip = client
        .get(info["my_ip_url"].as_str().expect("url"))
        .send()
        .await
        .expect("GET /ip");
    assert_eq!(ip.text().await.expect("text"), "198.51.100.7");
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        (
            "client_id",
            info["service_principal"]["client_id"].as_str().expect("id"),
        ),
        (
            "client_secret",
            info["service_principal"]["client_secret"]
                .as_str()
                .expect("secret"),
        ),
        ("scope", "https://management.azure.com/.default"),
    ])
    .expect("form");
    let token = client
        .post(format!(
            "{arm}/{}/oauth2/v2.0/token",
            info["tenant_id"].as_str().expect("tenant")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token POST");
    assert_eq!(token.status(), 200);

    drop(running.child.stdin.take());
    let status = wait_for_exit(&mut running.child);
    assert!(status.success(), "{status}");
    let rest = running
        .rest_of_stdout
        .recv_timeout(EXIT_TIMEOUT)
        .expect("stdout closed");
    assert_eq!(rest, "", "exactly one line on stdout");
    let state_dir = std::path::Path::new(info["ca_cert"].as_str().expect("path"))
        .parent()
        .expect("dir")
        .to_owned();
    assert!(
        !state_dir.exists(),
        "the temporary state dir {} is removed",
        state_dir.display()
    );
}

#[tokio::test]
async fn sigterm_stops_it_cleanly_and_a_given_state_dir_is_kept() {
    let directory = tempfile::tempdir().expect("temp dir");
    let state_dir = directory.path().join("emulator-state");
    let state_dir_text = state_dir.to_str().expect("UTF-8 path");
    let mut running = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state_dir_text,
        "--initiating-delay",
        "1s",
        "--token-lifetime",
        "PT10M",
    ]);
    let info = running.info.clone();
    assert_eq!(
        info["ca_cert"],
        state_dir.join("ca.pem").to_str().expect("UTF-8")
    );

    let client = https_client(&info);
    let arm = info["arm_endpoint"].as_str().expect("arm_endpoint");
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        (
            "client_id",
            info["service_principal"]["client_id"].as_str().expect("id"),
        ),
        (
            "client_secret",
            info["service_principal"]["client_secret"]
                .as_str()
                .expect("secret"),
        ),
        ("scope", "https://management.azure.com/.default"),
    ])
    .expect("form");
    let token: Value = client
        .post(format!(
            "{arm}/{}/oauth2/v2.0/token",
            info["tenant_id"].as_str().expect("tenant")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(token["expires_in"], 600, "--token-lifetime applies");

    let terminated = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    let status = wait_for_exit(&mut running.child);
    assert!(status.success(), "{status}");
    assert!(
        state_dir.join("ca.pem").is_file(),
        "a given state dir is kept"
    );
}

#[tokio::test]
async fn a_faults_file_is_active_from_the_start() {
    let directory = tempfile::tempdir().expect("temp dir");
    let faults = directory.path().join("faults.json");
    std::fs::write(
        &faults,
        r#"[{"method": "GET", "path": "/ip", "fault": {"kind": "internal_error"}, "times": 1}]"#,
    )
    .expect("write faults");
    let running = spawn(&["--faults", faults.to_str().expect("UTF-8")]);
    let client = https_client(&running.info);
    let url = running.info["my_ip_url"].as_str().expect("url");
    assert_eq!(client.get(url).send().await.expect("GET").status(), 500);
    assert_eq!(client.get(url).send().await.expect("GET").status(), 200);
}

fn run_to_completion(arguments: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(BINARY)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the emulator binary starts");
    // Should it start after all, a closed stdin stops it again.
    drop(child.stdin.take());
    let status = wait_for_exit(&mut child);
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stdout, stderr)
}

#[test]
fn a_bad_world_file_is_a_one_line_error_and_exit_code_2() {
    let directory = tempfile::tempdir().expect("temp dir");
    let world = directory.path().join("world.toml");
    std::fs::write(&world, "tenant_id = [ this is not toml").expect("write world");
    let (status, stdout, stderr) = run_to_completion(&["--world", world.to_str().expect("UTF-8")]);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("jit-emulator: "), "{stderr}");
    assert!(stderr.contains("world.toml"), "names the file: {stderr}");

    let missing = directory.path().join("missing.json");
    let (status, _, stderr) = run_to_completion(&["--world", missing.to_str().expect("UTF-8")]);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let faults = directory.path().join("faults.json");
    std::fs::write(
        &faults,
        r#"[{"path": "/ip", "fault": {"kind": "explode"}}]"#,
    )
    .expect("write faults");
    let (status, _, stderr) = run_to_completion(&["--faults", faults.to_str().expect("UTF-8")]);
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
}

#[test]
fn a_non_loopback_listen_address_is_refused() {
    let (status, stdout, stderr) = run_to_completion(&["--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert_eq!(stdout, "");
    assert!(stderr.contains("loopback"), "{stderr}");
}
