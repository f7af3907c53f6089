//! The agent in process, on a temp socket, driven through its real client: handshake,
//! register, list, extend, refresh, tokens, shutdown, version replacement, stale
//! sockets, a second instance, restarts with state, a corrupt state file, idle exit,
//! and what a client sees when no agent can start.

mod daemon_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{
    BackendCall, EVENT_TIMEOUT, TestBackend, VERSION, config, dirs, serve, start, this_test_binary,
    window,
};
use jiff::{SignedDuration, Timestamp};
use jit_agent::daemon::client::{background_command, wait_until_stopped};
use jit_agent::daemon::notifier::{EndReason, LogNotifier};
use jit_agent::daemon::protocol::{ErrorKind, ExtendLength, PROTOCOL_VERSION};
use jit_agent::daemon::store::{TrackedWindow, WindowStore};
use jit_agent::daemon::{
    Agent, AgentClient, AgentPaths, BackendError, ClientError, NotificationKind, OfflineBackend,
    RecordingNotifier, Refreshed, ServerError, StartError, StartOptions, Started, WindowUpdate,
    ensure_running,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn client(paths: &AgentPaths) -> AgentClient {
    AgentClient::connect(paths, VERSION, CONNECT_TIMEOUT)
        .await
        .expect("connect to the agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_register_list_extend_and_shutdown() {
    let dirs = dirs();
    let backend = Arc::new(TestBackend::default());
    let agent = start(
        config(&dirs.paths),
        Arc::clone(&backend),
        RecordingNotifier::default(),
    )
    .await;

    let mut client = client(&dirs.paths).await;
    let welcome = client.welcome().clone();
    assert_eq!(welcome.protocol_version, PROTOCOL_VERSION);
    assert_eq!(welcome.agent_version, VERSION);
    assert_eq!(welcome.pid, std::process::id());
    assert!(client.is_same_version(VERSION, None));
    assert!(!client.is_same_version("9.9.9", None));

    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    let registered = client.register_window(&opened).await.expect("register");
    assert_eq!(registered.window, opened);
    assert!(registered.time_left > SignedDuration::from_mins(59));
    assert!(!registered.ends_soon_notified);

    let listed = client.list_windows().await.expect("list");
    assert_eq!(listed.windows.len(), 1);
    assert_eq!(listed.windows[0].window, opened);

    let extended = client
        .extend_window(
            "rg-web/api-01",
            ExtendLength::Duration {
                duration: SignedDuration::from_hours(2),
            },
        )
        .await
        .expect("extend");
    assert!(extended.window.ends_at > opened.ends_at);
    assert_eq!(
        backend.calls(),
        vec![BackendCall::Extend {
            vm_id: opened.vm_id.clone(),
            length: ExtendLength::Duration {
                duration: SignedDuration::from_hours(2)
            },
        }]
    );
    let listed = client.list_windows().await.expect("list after extend");
    assert_eq!(listed.windows.len(), 1, "the old window was superseded");
    assert_eq!(listed.windows[0].window.ends_at, extended.window.ends_at);

    let missing = client
        .extend_window("web-01", ExtendLength::PolicyMaximum)
        .await;
    assert!(
        matches!(&missing, Err(ClientError::Agent(error)) if error.kind == ErrorKind::NotFound),
        "{missing:?}"
    );

    let token = client
        .token("https://management.azure.com/.default")
        .await
        .expect("token");
    assert_eq!(
        token.secret,
        "token-for-https://management.azure.com/.default"
    );

    let status = client.status().await.expect("status");
    assert_eq!(status.open_windows, 1);
    assert_eq!(status.backend, "test");
    assert_eq!(status.store_problem, None);

    client.shutdown().await.expect("shutdown");
    agent.stopped().await.expect("the agent stops cleanly");
    assert!(
        !dirs.paths.socket().exists(),
        "the socket is removed on shutdown"
    );
    assert!(wait_until_stopped(&dirs.paths, EVENT_TIMEOUT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_shared_by_two_windows_are_ambiguous() {
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    let production = window(
        "web-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    let mut development = production.clone();
    development.vm_id = development.vm_id.replace("rg-web", "rg-app");
    development.resource_group = "rg-app".to_owned();
    client.register_window(&production).await.expect("register");
    client
        .register_window(&development)
        .await
        .expect("register");

    let ambiguous = client
        .extend_window("web-01", ExtendLength::PolicyMaximum)
        .await;
    assert!(
        matches!(&ambiguous, Err(ClientError::Agent(error))
            if error.kind == ErrorKind::Ambiguous && error.message.contains("rg-app/web-01")),
        "{ambiguous:?}"
    );
    let chosen = client
        .extend_window("rg-app/web-01", ExtendLength::PolicyMaximum)
        .await
        .expect("extend by group/name");
    assert_eq!(chosen.window.resource_group, "rg-app");
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_applies_superseded_and_revoked_windows_and_the_clock() {
    let dirs = dirs();
    let backend = Arc::new(TestBackend::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let agent = start(
        config(&dirs.paths),
        Arc::clone(&backend),
        Arc::clone(&notifier),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    let api = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    let web = window(
        "web-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&api).await.expect("register api-01");
    client.register_window(&web).await.expect("register web-01");

    let mut newer = api.clone();
    newer.requested_at = api.requested_at + SignedDuration::from_mins(1);
    newer.ends_at = api.ends_at + SignedDuration::from_hours(1);
    let offset = SignedDuration::from_secs(90);
    backend.script_refresh(Refreshed {
        updates: vec![
            WindowUpdate::Changed(Box::new(newer.clone())),
            WindowUpdate::Revoked {
                vm_id: web.vm_id.clone(),
            },
        ],
        server_clock_offset: Some(offset),
    });
    let refreshed = client.refresh_now().await.expect("refresh");
    assert_eq!(refreshed.windows.len(), 1);
    assert_eq!(refreshed.windows[0].window, newer);
    assert!(matches!(backend.calls().first(), Some(BackendCall::Refresh(ids)) if ids.len() == 2));

    let revoked = notifier
        .wait_for(EVENT_TIMEOUT, |notification| {
            notification.kind == NotificationKind::Ended(EndReason::Revoked)
        })
        .await
        .expect("a revoked notification");
    assert_eq!(revoked.vm_name, "web-01");
    assert_eq!(revoked.ports, vec![22]);

    let status = client.status().await.expect("status");
    assert_eq!(status.server_clock_offset, offset);
    assert!(status.last_refresh.is_some());
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_windows_are_refreshed_periodically_and_failures_are_reported() {
    let dirs = dirs();
    let backend = Arc::new(TestBackend::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let mut config = config(&dirs.paths);
    config.refresh_interval = Duration::from_millis(50);
    let agent = start(config, Arc::clone(&backend), Arc::clone(&notifier)).await;
    let mut client = client(&dirs.paths).await;

    backend.fail_refreshes(Some(BackendError::Azure("ARM is down".to_owned())));
    let api = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&api).await.expect("register");
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let status = client.status().await.expect("status");
        if status.last_refresh_error.as_deref() == Some("ARM is down") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed refresh was not reported: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Revoked elsewhere (no command here asks for a refresh): the agent finds out itself.
    backend.script_refresh(Refreshed {
        updates: vec![WindowUpdate::Revoked {
            vm_id: api.vm_id.clone(),
        }],
        server_clock_offset: None,
    });
    backend.fail_refreshes(None);
    let ended = notifier
        .wait_for(EVENT_TIMEOUT, |n| {
            n.kind == NotificationKind::Ended(EndReason::Revoked)
        })
        .await
        .expect("the periodic refresh saw the revocation");
    assert_eq!(ended.vm_name, "api-01");
    assert!(
        client
            .list_windows()
            .await
            .expect("list")
            .windows
            .is_empty()
    );
    let status = client.status().await.expect("status");
    assert_eq!(status.last_refresh_error, None);
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_agent_tracks_windows_but_says_it_cannot_extend() {
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        OfflineBackend::new("no Azure settings"),
        RecordingNotifier::default(),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&opened).await.expect("register");
    let refused = client
        .extend_window("api-01", ExtendLength::PolicyMaximum)
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Agent(error))
            if error.kind == ErrorKind::Unavailable && error.message.contains("no Azure settings")),
        "{refused:?}"
    );
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_old_clients_may_only_shut_down() {
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;

    // The first message must be hello.
    let mut raw = RawConnection::open(&dirs.paths).await;
    let answer = raw.exchange(r#"{"type":"list_windows"}"#).await;
    assert!(answer.contains(r#""kind":"invalid_request""#), "{answer}");

    // A client of another protocol version is welcomed, then only allowed to shut down.
    let mut raw = RawConnection::open(&dirs.paths).await;
    let welcome = raw
        .exchange(r#"{"type":"hello","protocol_version":999,"client_version":"9.0.0"}"#)
        .await;
    assert!(welcome.contains(r#""type":"welcome""#), "{welcome}");
    assert!(welcome.contains(&format!(r#""protocol_version":{PROTOCOL_VERSION}"#)));
    let refused = raw.exchange(r#"{"type":"list_windows"}"#).await;
    assert!(
        refused.contains(r#""kind":"version_mismatch""#),
        "{refused}"
    );
    let garbage = raw.exchange("not json").await;
    assert!(garbage.contains(r#""kind":"invalid_request""#), "{garbage}");
    let bye = raw.exchange(r#"{"type":"shutdown"}"#).await;
    assert_eq!(bye, r#"{"type":"shutting_down"}"#);
    agent.stopped().await.expect("the agent stops on shutdown");
}

/// A connection that speaks raw JSON lines.
struct RawConnection {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawConnection {
    async fn open(paths: &AgentPaths) -> Self {
        let stream = tokio::net::UnixStream::connect(paths.socket())
            .await
            .expect("connect to the socket");
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn exchange(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send");
        let mut answer = String::new();
        tokio::time::timeout(EVENT_TIMEOUT, self.reader.read_line(&mut answer))
            .await
            .expect("an answer in time")
            .expect("read the answer");
        answer.trim_end().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_is_refused() {
    let dirs = dirs();
    let first = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let second = Agent::bind(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    match second {
        Err(ServerError::AlreadyRunning { pid, .. }) => {
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The first one is unaffected.
    let mut client = client(&dirs.paths).await;
    assert!(client.list_windows().await.is_ok());
    first.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_and_a_foreign_file_is_not() {
    let dirs = dirs();
    std::fs::create_dir_all(dirs.paths.runtime_dir()).expect("runtime dir");
    std::fs::set_permissions(
        dirs.paths.runtime_dir(),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    // A socket nobody listens on any more: what a crashed agent leaves.
    drop(std::os::unix::net::UnixListener::bind(dirs.paths.socket()).expect("bind a socket"));
    assert!(dirs.paths.socket().exists());
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    assert!(client.list_windows().await.is_ok());
    agent.stop().await.expect("stop");

    // A regular file where the socket goes is not ours to delete.
    std::fs::write(dirs.paths.socket(), b"not a socket").expect("write a file");
    let refused = Agent::bind(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(ServerError::NotASocket { .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private() {
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dirs.paths.socket()), 0o600);
    assert_eq!(mode(dirs.paths.runtime_dir()), 0o700);
    assert_eq!(mode(dirs.paths.state_dir()), 0o700);
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_survive_a_restart_and_ended_ones_are_dropped() {
    let dirs = dirs();
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    {
        let agent = start(
            config(&dirs.paths),
            Arc::new(TestBackend::default()),
            RecordingNotifier::default(),
        )
        .await;
        let mut client = client(&dirs.paths).await;
        client.register_window(&opened).await.expect("register");
        client.shutdown().await.expect("shutdown");
        agent.stopped().await.expect("stopped");
    }
    // While the agent is down, a window that already ended appears in the file.
    let store = WindowStore::new(dirs.paths.state_file());
    let mut saved = store
        .load(Timestamp::now())
        .expect("load the saved state")
        .state;
    assert_eq!(saved.windows.len(), 1);
    let mut ended = window(
        "web-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    ended.ends_at = Timestamp::now() - SignedDuration::from_mins(1);
    saved.windows.push(TrackedWindow::new(ended));
    store.save(&saved).expect("save");

    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    let listed = client.list_windows().await.expect("list");
    assert_eq!(
        listed
            .windows
            .iter()
            .map(|view| view.window.clone())
            .collect::<Vec<_>>(),
        vec![opened]
    );
    let status = client.status().await.expect("status");
    assert_eq!(status.store_problem, None);
    agent.stop().await.expect("stop");

    let mode = std::fs::metadata(dirs.paths.state_file())
        .expect("state file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the state file is private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_set_aside_and_reported() {
    let dirs = dirs();
    std::fs::create_dir_all(dirs.paths.state_dir()).expect("state dir");
    let garbage = b"{\"format\":1,\"windows\":[{\"window\":";
    std::fs::write(dirs.paths.state_file(), garbage).expect("write garbage");

    let agent = Agent::bind(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await
    .expect("the agent starts despite the corrupt file");
    let problem = agent.load_problem().expect("the problem is reported");
    let agent = serve(agent);

    let set_aside: Vec<_> = std::fs::read_dir(dirs.paths.state_dir())
        .expect("list the state dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("windows.json.corrupt-"))
        })
        .collect();
    assert_eq!(set_aside.len(), 1, "{set_aside:?}");
    assert_eq!(
        std::fs::read(&set_aside[0]).expect("read the set-aside file"),
        garbage,
        "the corrupt content is kept, not lost"
    );
    assert!(
        problem.contains(&set_aside[0].display().to_string()),
        "{problem}"
    );

    let mut client = client(&dirs.paths).await;
    let status = client.status().await.expect("status");
    assert_eq!(status.store_problem.as_deref(), Some(problem.as_str()));
    assert!(
        client
            .list_windows()
            .await
            .expect("list")
            .windows
            .is_empty()
    );
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&opened).await.expect("register");
    agent.stop().await.expect("stop");
    let reloaded = WindowStore::new(dirs.paths.state_file())
        .load(Timestamp::now())
        .expect("the new file is readable");
    assert_eq!(reloaded.state.windows.len(), 1);
    assert!(reloaded.set_aside.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_exits_by_itself() {
    let dirs = dirs();
    let mut config = config(&dirs.paths);
    config.idle_exit = Some(Duration::from_millis(200));
    let agent = start(
        config,
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    agent.stopped().await.expect("idle exit is a clean stop");
    assert!(!dirs.paths.socket().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_follow_azures_clock() {
    let dirs = dirs();
    let notifier = Arc::new(RecordingNotifier::default());
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        Arc::clone(&notifier),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    // Azure's clock runs an hour ahead of this machine's: the window ends 6 s from now
    // on Azure's clock, so the agent must warn 3 s from now, not in an hour.
    let offset = SignedDuration::from_hours(1);
    let opened = window("api-01", SignedDuration::from_secs(6), offset);
    client.register_window(&opened).await.expect("register");

    let kinds = [
        NotificationKind::Opened,
        NotificationKind::EndsSoon,
        NotificationKind::Ended(EndReason::Expired),
    ];
    for kind in kinds {
        let seen = notifier
            .wait_for(EVENT_TIMEOUT, |notification| notification.kind == kind)
            .await
            .unwrap_or_else(|| panic!("no {kind:?} notification; got {:?}", notifier.recorded()));
        assert_eq!(seen.vm_name, "api-01");
        assert_eq!(seen.ports, vec![22]);
        assert!(seen.body().contains("api-01"), "{}", seen.body());
    }
    let order: Vec<NotificationKind> = notifier.recorded().iter().map(|n| n.kind).collect();
    assert_eq!(order, kinds, "each notification once, in order");
    let listed = client.list_windows().await.expect("list");
    assert!(
        listed.windows.is_empty(),
        "an ended window is no longer tracked"
    );
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_shorter_than_the_lead_gets_no_separate_warning() {
    let dirs = dirs();
    let notifier = Arc::new(RecordingNotifier::default());
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        Arc::clone(&notifier),
    )
    .await;
    let mut client = client(&dirs.paths).await;
    let short = window("api-01", SignedDuration::from_secs(1), SignedDuration::ZERO);
    let view = client.register_window(&short).await.expect("register");
    assert!(view.ends_soon_notified);
    notifier
        .wait_for(EVENT_TIMEOUT, |n| {
            matches!(n.kind, NotificationKind::Ended(_))
        })
        .await
        .expect("ended");
    let kinds: Vec<NotificationKind> = notifier.recorded().iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        vec![
            NotificationKind::Opened,
            NotificationKind::Ended(EndReason::Expired)
        ]
    );
    let already_ended = window(
        "web-01",
        SignedDuration::from_secs(-5),
        SignedDuration::ZERO,
    );
    let refused = client.register_window(&already_ended).await;
    assert!(
        matches!(&refused, Err(ClientError::Agent(error)) if error.kind == ErrorKind::InvalidRequest),
        "{refused:?}"
    );
    agent.stop().await.expect("stop");
}

// ---- The agent as a separate process: ensure_running, replacement, failures. ----

const HELPER_RUNTIME_DIR: &str = "JIT_TEST_AGENT_RUNTIME_DIR";
const HELPER_STATE_DIR: &str = "JIT_TEST_AGENT_STATE_DIR";

/// Not a test: the agent process that `ensure_running` starts in the tests below
/// (the `jit-agent` binary lives in another package).
#[test]
#[ignore = "helper process, started by the ensure_running tests"]
fn agent_process() {
    let (Some(runtime_dir), Some(state_dir)) = (
        std::env::var_os(HELPER_RUNTIME_DIR),
        std::env::var_os(HELPER_STATE_DIR),
    ) else {
        panic!("this helper runs only as the agent process of the ensure_running tests");
    };
    let paths = AgentPaths::new(runtime_dir, state_dir);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let agent = Agent::bind(
            config(&paths),
            OfflineBackend::new("test helper"),
            LogNotifier,
        )
        .await
        .expect("the helper agent binds");
        agent
            .serve(std::future::pending())
            .await
            .expect("the helper agent serves");
    });
}

fn spawn_helper_agent(paths: &AgentPaths) -> std::io::Result<std::process::Child> {
    background_command(this_test_binary())
        .args(["--exact", "agent_process", "--ignored", "--test-threads=1"])
        .env(HELPER_RUNTIME_DIR, paths.runtime_dir())
        .env(HELPER_STATE_DIR, paths.state_dir())
        .spawn()
}

fn start_options(paths: &AgentPaths) -> StartOptions {
    let mut options = StartOptions::new(paths.clone(), VERSION);
    options.start_timeout = EVENT_TIMEOUT;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_running_starts_then_reuses_an_agent_process() {
    let dirs = dirs();
    let options = start_options(&dirs.paths);
    let (mut client, started) = ensure_running(&options, || spawn_helper_agent(&dirs.paths))
        .await
        .expect("an agent starts");
    assert_eq!(started, Started::Spawned);
    let agent_pid = client.welcome().pid;
    assert_ne!(
        agent_pid,
        std::process::id(),
        "the agent is its own process"
    );
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&opened).await.expect("register");

    let (mut again, started) = ensure_running(&options, || {
        Err(std::io::Error::other("must not spawn a second agent"))
    })
    .await
    .expect("the running agent is reused");
    assert_eq!(started, Started::AlreadyRunning);
    assert_eq!(again.welcome().pid, agent_pid);
    assert_eq!(again.list_windows().await.expect("list").windows.len(), 1);

    again.shutdown().await.expect("shutdown");
    assert!(
        wait_until_stopped(&dirs.paths, EVENT_TIMEOUT).await,
        "the agent process exits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_another_version_is_replaced() {
    let dirs = dirs();
    let mut old_config = config(&dirs.paths);
    old_config.agent_version = "0.0.1-old".to_owned();
    let old_agent = start(
        old_config,
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let mut old_client = client(&dirs.paths).await;
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    old_client.register_window(&opened).await.expect("register");
    drop(old_client);

    let options = start_options(&dirs.paths);
    let (mut client, started) = ensure_running(&options, || spawn_helper_agent(&dirs.paths))
        .await
        .expect("the old agent is replaced");
    assert_eq!(
        started,
        Started::Replaced {
            previous_version: "0.0.1-old".to_owned()
        }
    );
    old_agent.stopped().await.expect("the old agent stopped");
    assert_eq!(client.welcome().agent_version, VERSION);
    assert_ne!(client.welcome().pid, std::process::id());
    let listed = client.list_windows().await.expect("list");
    assert_eq!(
        listed.windows.len(),
        1,
        "the new agent took over the windows"
    );

    client.shutdown().await.expect("shutdown");
    assert!(wait_until_stopped(&dirs.paths, EVENT_TIMEOUT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_agent_can_start_the_error_says_why() {
    let dirs = dirs();
    let options = start_options(&dirs.paths);
    let spawn_failed = ensure_running(&options, || {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "jit-agent not found",
        ))
    })
    .await;
    assert!(
        matches!(&spawn_failed, Err(StartError::Spawn(_))),
        "{spawn_failed:?}"
    );

    let exited = ensure_running(&options, || std::process::Command::new("false").spawn()).await;
    match exited {
        Err(error @ StartError::Exited { .. }) => {
            let message = error.to_string();
            assert!(message.contains("agent.log"), "{message}");
        }
        other => panic!("expected Exited, got {other:?}"),
    }
    let not_running = AgentClient::connect(&dirs.paths, VERSION, CONNECT_TIMEOUT).await;
    assert!(matches!(not_running, Err(ClientError::NotRunning { .. })));
}
