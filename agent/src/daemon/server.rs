//! The agent process: one per user, serving the protocol, keeping windows, firing
//! notifications on Azure's clock, and re-reading windows from Azure while any is open.
//!
//! Start-up order matters for safety: the private directories first, then the instance
//! lock (held for the agent's whole life, so a second agent stops here), then the socket
//! (a leftover one is removed only when nothing answers on it), then the state file.
//! Shutdown reverses it: stop accepting, save, remove the socket, release the lock.
//!
//! Inside, a few tasks share one `Shared` value: the accept loop (one task per
//! connection), the scheduler (sleeps until the next "ends soon"/"ended" moment), the
//! refresher (asks the backend every `refresh_interval` while windows are open), and a
//! notification task, so a slow notification service never delays an answer or a timer.
//! State is behind a plain mutex never held across an `.await`.
//!
//! `OpenWindow` requests (many `jit proxy` processes for one VM at once: Ansible, an
//! editor reconnecting) are answered by **one** request to Azure: the first ask for a
//! VM, port and source starts a flight (a task running the access flow through the
//! backend), later asks for the same key join it and get the same answer, and asks that
//! come once it landed get the window it opened as long as its port still answers and
//! it has time left. The agent also remembers, per VM name, what makes the next request
//! cheaper (see `access::memory`).
//!
//! The desktop side (the tray, a notification's "Extend" button) only presents: it is
//! handed the window list through a `watch` channel whenever it changes, and sends
//! [`DesktopRequest`]s back, which a task here carries out with the same operations the
//! socket requests use. The server knows nothing of how a tray is drawn.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::io::BufReader;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use super::backend::{AccessBackend, BackendError, Granted, Refreshed, WindowUpdate};
use super::notifier::{
    EndReason, FallbackNotifier, Notification, NotificationAction, NotificationKind, Notifier,
};
use super::paths::AgentPaths;
use super::protocol::{
    AccessWindow, AgentStatus, ErrorKind, ExtendLength, OpenAsk, Opened, PROTOCOL_VERSION,
    ProtocolError, RememberedVm, Request, Response, Welcome, WindowList, WindowView,
};
use super::schedule::{self, AzureClock, Due};
use super::store::{StoreError, StoredState, TrackedWindow, WindowStore};
use super::transport::{self, FrameError, Listener, Peer};
use super::tray;
use crate::access::locate::VmQuery;
use crate::access::memory;
use crate::access::request::answers_now;

/// The longest the scheduler sleeps without looking again: a suspended laptop's
/// monotonic clock stops, and a new clock offset may move deadlines.
const MAX_SCHEDULER_SLEEP: Duration = Duration::from_secs(30);

/// How long pending notifications may take to go out when the agent stops.
const NOTIFICATION_DRAIN: Duration = Duration::from_secs(2);

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the socket, locks and state live.
    pub paths: AgentPaths,
    /// This program's version, sent in the handshake.
    pub agent_version: String,
    /// Which configuration the agent runs with (shown to clients, who replace an agent
    /// with another profile).
    pub profile: Option<String>,
    /// How long before the end "ends soon" is sent.
    pub notify_before: SignedDuration,
    /// How often windows are re-read from Azure while any is open.
    pub refresh_interval: Duration,
    /// Exit after this long with no windows and no requests (`None`: run until asked).
    pub idle_exit: Option<Duration>,
    /// Show a tray icon while any window is open (off by default in the library; the
    /// agent program turns it on unless `[agent] tray = false`).
    pub tray: bool,
}

impl AgentConfig {
    /// The defaults: warn 5 minutes before the end, re-read every minute, never idle out.
    pub fn new(paths: AgentPaths, agent_version: impl Into<String>) -> Self {
        Self {
            paths,
            agent_version: agent_version.into(),
            profile: None,
            notify_before: SignedDuration::from_mins(5),
            refresh_interval: Duration::from_secs(60),
            idle_exit: None,
            tray: false,
        }
    }
}

/// What a person asks of the agent from the desktop (the tray's menu, a notification's
/// button). Each is carried out like the matching socket request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesktopRequest {
    /// Extend the VM's window by the policy maximum (as `ExtendWindow`).
    Extend {
        /// The VM's resource id.
        vm_id: String,
    },
    /// Stop tracking the VM's window; Azure keeps it open until it ends.
    EndTracking {
        /// The VM's resource id.
        vm_id: String,
    },
    /// Stop the agent (as `Shutdown`).
    Quit,
}

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another agent holds the instance lock (or answers on the socket).
    #[error("an agent is already running{} ({endpoint})", pid.map(|pid| format!(" as process {pid}")).unwrap_or_default())]
    AlreadyRunning {
        /// The endpoint it serves.
        endpoint: String,
        /// Its process id, if it wrote one.
        pid: Option<u32>,
    },
    /// A directory could not be created or is not private.
    #[error("cannot use {path} for the agent: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Something that is not a socket sits where the socket goes.
    #[error("{path} exists and is not a socket; remove it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The endpoint could not be bound.
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The state file could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bound agent, ready to [`Agent::serve`].
#[derive(Debug)]
pub struct Agent<B, N> {
    shared: Arc<Shared<B, N>>,
    listener: Listener,
    lock: File,
    notifications: mpsc::UnboundedReceiver<Notification>,
    desktop_requests: mpsc::UnboundedReceiver<DesktopRequest>,
}

#[derive(Debug)]
struct Shared<B, N> {
    config: AgentConfig,
    backend: B,
    notifier: FallbackNotifier<N>,
    store: WindowStore,
    state: Mutex<State>,
    /// Wakes the scheduler when windows or the clock changed.
    changed: Notify,
    /// Becomes `true` once the agent must stop.
    stopping: watch::Sender<bool>,
    refresh_gate: tokio::sync::Mutex<()>,
    save_gate: tokio::sync::Mutex<()>,
    notifications: mpsc::UnboundedSender<Notification>,
    /// The windows as the desktop (the tray) shows them, republished on every change.
    published_windows: watch::Sender<WindowList>,
    /// Where the tray and notification buttons send what the user picked.
    desktop_requests: mpsc::UnboundedSender<DesktopRequest>,
    started_at: Timestamp,
}

#[derive(Debug)]
struct State {
    windows: Vec<TrackedWindow>,
    clock: AzureClock,
    last_refresh: Option<Timestamp>,
    last_refresh_error: Option<String>,
    load_problem: Option<String>,
    save_problem: Option<String>,
    last_activity: tokio::time::Instant,
    /// What is remembered about VMs access was granted to (see `access::memory`).
    remembered: Vec<RememberedVm>,
    /// `OpenWindow` flights under way, each with the channel its answer comes on.
    flights: Vec<(FlightKey, watch::Receiver<Option<FlightOutcome>>)>,
    /// What landed flights opened, for asks that come later.
    landed: Vec<(FlightKey, Opened)>,
}

/// What one flight answers every client that asked.
type FlightOutcome = Result<Opened, ProtocolError>;

/// Which `OpenWindow` asks share a flight: the same VM as typed (case-insensitive), port,
/// source and subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FlightKey {
    vm: String,
    port: Option<u16>,
    source: Option<String>,
    subscriptions: Vec<String>,
}

impl FlightKey {
    fn of(ask: &OpenAsk) -> Self {
        let mut subscriptions: Vec<String> = ask
            .subscriptions
            .iter()
            .map(|subscription| subscription.to_ascii_lowercase())
            .collect();
        subscriptions.sort();
        Self {
            vm: ask.vm.trim().to_ascii_lowercase(),
            port: ask.port,
            source: ask
                .source
                .as_deref()
                .map(|source| source.trim().to_ascii_lowercase()),
            subscriptions,
        }
    }
}

/// How long a probe of a window opened earlier may take before a new flight starts.
const REUSE_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

impl<B: AccessBackend, N: Notifier> Agent<B, N> {
    /// Takes the instance lock, binds the endpoint and loads the state file.
    pub async fn bind(config: AgentConfig, backend: B, notifier: N) -> Result<Self, ServerError> {
        let paths = config.paths.clone();
        for dir in [paths.runtime_dir(), paths.state_dir()] {
            transport::prepare_private_dir(dir).map_err(|source| ServerError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let lock = take_instance_lock(&paths)?;
        #[cfg(unix)]
        remove_stale_socket(&paths)?;
        let listener = Listener::bind(&paths).map_err(|source| bind_error(&paths, source))?;

        let store = WindowStore::new(paths.state_file());
        let loaded = store.load(Timestamp::now())?;
        if loaded.dropped_expired > 0 {
            tracing::info!(
                count = loaded.dropped_expired,
                "dropped windows that ended while the agent was not running"
            );
        }
        let load_problem = loaded.set_aside.map(|set_aside| {
            format!(
                "the state file was unreadable ({}); it was moved to {}",
                set_aside.reason,
                set_aside.moved_to.display()
            )
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let (request_sender, request_receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            backend,
            notifier: FallbackNotifier::with_requests(notifier, request_sender.clone()),
            store,
            state: Mutex::new(State {
                windows: loaded.state.windows,
                clock: AzureClock::new(loaded.state.server_clock_offset),
                last_refresh: None,
                last_refresh_error: None,
                load_problem,
                save_problem: None,
                last_activity: tokio::time::Instant::now(),
                remembered: Vec::new(),
                flights: Vec::new(),
                landed: Vec::new(),
            }),
            changed: Notify::new(),
            stopping: watch::Sender::new(false),
            refresh_gate: tokio::sync::Mutex::new(()),
            save_gate: tokio::sync::Mutex::new(()),
            notifications: sender,
            published_windows: watch::Sender::new(WindowList {
                azure_now: Timestamp::now(),
                windows: Vec::new(),
            }),
            desktop_requests: request_sender,
            started_at: Timestamp::now(),
            config,
        });
        shared.publish_windows();
        tracing::info!(
            endpoint = %paths.endpoint_display(),
            version = %shared.config.agent_version,
            backend = %shared.backend.describe(),
            "agent listening"
        );
        Ok(Self {
            shared,
            listener,
            lock,
            notifications: receiver,
            desktop_requests: request_receiver,
        })
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> String {
        self.shared.config.paths.endpoint_display()
    }

    /// A problem found while loading the state file (a corrupt file set aside).
    pub fn load_problem(&self) -> Option<String> {
        self.shared.lock_state().load_problem.clone()
    }

    /// Serves until a client asks to shut down, `stop` completes, or the agent idles
    /// out; then saves, removes the socket and releases the lock.
    pub async fn serve(self, stop: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Agent {
            shared,
            mut listener,
            lock,
            notifications,
            desktop_requests,
        } = self;
        let mut background = JoinSet::new();
        background.spawn(Arc::clone(&shared).run_scheduler());
        background.spawn(Arc::clone(&shared).run_refresher());
        background.spawn(Arc::clone(&shared).run_desktop_requests(desktop_requests));
        if shared.config.tray {
            background.spawn(tray::run(tray::TrayLink {
                windows: shared.published_windows.subscribe(),
                requests: shared.desktop_requests.clone(),
                notifications: shared.notifications.clone(),
                stopping: shared.stopping.subscribe(),
            }));
        }
        if let Some(idle) = shared.config.idle_exit {
            background.spawn(Arc::clone(&shared).run_idle_watch(idle));
        }
        let notifier_task = tokio::spawn(Arc::clone(&shared).run_notifications(notifications));
        // Windows loaded from disk may already be due.
        shared.changed.notify_one();

        let mut connections = JoinSet::new();
        let mut stopping = shared.stopping.subscribe();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = stopped(&mut stopping) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(Arc::clone(&shared).serve_connection(stream, peer));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: don't spin.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("agent stopping");
        shared.stopping.send_replace(true);
        drop(listener);
        connections.shutdown().await;
        while background.join_next().await.is_some() {}
        if let Err(error) = notifier_task.await {
            tracing::debug!(%error, "the notification task ended abnormally");
        }
        shared.save().await;
        #[cfg(unix)]
        if let Err(error) = std::fs::remove_file(shared.config.paths.socket()) {
            tracing::debug!(%error, "could not remove the socket");
        }
        drop(lock);
        tracing::info!("agent stopped");
        Ok(())
    }
}

fn bind_error(paths: &AgentPaths, source: io::Error) -> ServerError {
    if cfg!(windows) && source.kind() == io::ErrorKind::PermissionDenied {
        // The first pipe instance belongs to another process.
        return ServerError::AlreadyRunning {
            endpoint: paths.endpoint_display(),
            pid: None,
        };
    }
    ServerError::Bind {
        endpoint: paths.endpoint_display(),
        source,
    }
}

/// Opens and locks the instance lock file, writing our pid into it.
fn take_instance_lock(paths: &AgentPaths) -> Result<File, ServerError> {
    let path = paths.instance_lock();
    let lock_error = |source| ServerError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = open_lock_file(&path).map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(ServerError::AlreadyRunning {
                endpoint: paths.endpoint_display(),
                pid,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
    if let Err(error) = written {
        tracing::debug!(%error, "could not write the pid into the lock file");
    }
    Ok(file)
}

/// Opens (creating) a lock file, private to the user.
pub(crate) fn open_lock_file(path: &std::path::Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Removes a socket left by an agent that died, after checking nothing answers on it.
#[cfg(unix)]
fn remove_stale_socket(paths: &AgentPaths) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;

    let socket = paths.socket();
    let metadata = match std::fs::symlink_metadata(&socket) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(bind_error(paths, source)),
    };
    if !metadata.file_type().is_socket() {
        return Err(ServerError::NotASocket { path: socket });
    }
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        // Something without our lock answers there: leave it alone.
        return Err(ServerError::AlreadyRunning {
            endpoint: paths.endpoint_display(),
            pid: None,
        });
    }
    tracing::info!(socket = %socket.display(), "removing a stale socket");
    std::fs::remove_file(&socket).map_err(|source| bind_error(paths, source))
}

impl<B: AccessBackend, N: Notifier> Shared<B, N> {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is a
        // single assignment or push), so keep going with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn request_stop(&self) {
        self.stopping.send_replace(true);
    }

    async fn serve_connection(self: Arc<Self>, stream: transport::BoxedStream, peer: Peer) {
        let (read_half, mut write_half) = tokio::io::split(stream);
        let mut reader = BufReader::new(read_half);
        if peer != Peer::Owner {
            tracing::warn!(?peer, "refused a connection from another user");
            let refusal = error_response(
                ErrorKind::PermissionDenied,
                "this agent serves only the user who started it",
            );
            let _ = transport::write_message(&mut write_half, &refusal).await;
            return;
        }
        let compatible = match self.handshake(&mut reader, &mut write_half).await {
            Some(compatible) => compatible,
            None => return,
        };
        loop {
            let line = match transport::read_line(&mut reader).await {
                Ok(Some(line)) => line,
                Ok(None) => return,
                Err(FrameError::TooLong) => {
                    let error = error_response(ErrorKind::InvalidRequest, "message too long");
                    let _ = transport::write_message(&mut write_half, &error).await;
                    return;
                }
                Err(FrameError::Io(error)) => {
                    tracing::debug!(%error, "client connection failed");
                    return;
                }
            };
            self.lock_state().last_activity = tokio::time::Instant::now();
            let response = match serde_json::from_slice::<Request>(&line) {
                Err(error) => error_response(
                    ErrorKind::InvalidRequest,
                    format!("unreadable request: {error}"),
                ),
                Ok(Request::Shutdown) => {
                    let _ =
                        transport::write_message(&mut write_half, &Response::ShuttingDown).await;
                    tracing::info!("shutdown requested by a client");
                    self.request_stop();
                    return;
                }
                Ok(_) if !compatible => error_response(
                    ErrorKind::VersionMismatch,
                    format!(
                        "this agent speaks protocol {PROTOCOL_VERSION}; only shutdown is accepted"
                    ),
                ),
                Ok(Request::OpenWindow { ask }) => Arc::clone(&self).open_window(*ask).await,
                Ok(request) => self.handle(request).await,
            };
            if let Err(error) = transport::write_message(&mut write_half, &response).await {
                tracing::debug!(%error, "could not answer a client");
                return;
            }
        }
    }

    /// Reads `Hello`, answers `Welcome`; `Some(compatible)` when the client may go on.
    async fn handshake<R, W>(&self, reader: &mut R, writer: &mut W) -> Option<bool>
    where
        R: tokio::io::AsyncBufRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let line = transport::read_line(reader).await.ok().flatten()?;
        let Ok(Request::Hello {
            protocol_version,
            client_version,
        }) = serde_json::from_slice::<Request>(&line)
        else {
            let error =
                error_response(ErrorKind::InvalidRequest, "the first message must be hello");
            let _ = transport::write_message(writer, &error).await;
            return None;
        };
        let welcome = Response::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            agent_version: self.config.agent_version.clone(),
            pid: std::process::id(),
            profile: self.config.profile.clone(),
        });
        transport::write_message(writer, &welcome).await.ok()?;
        let compatible = protocol_version == PROTOCOL_VERSION;
        if !compatible {
            tracing::info!(
                protocol_version,
                %client_version,
                "a client of another protocol version connected"
            );
        }
        Some(compatible)
    }

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::Hello { .. } => {
                error_response(ErrorKind::InvalidRequest, "hello was already exchanged")
            }
            Request::RegisterWindow { window } => self.register(*window).await,
            Request::ListWindows => Response::Windows(self.list()),
            Request::ExtendWindow { vm, length } => self.extend(&vm, &length).await,
            Request::RefreshNow => match self.refresh_once().await {
                Ok(()) => Response::Windows(self.list()),
                Err(error) => backend_error_response(&error),
            },
            Request::GetToken { scope } => match self.backend.token(&scope).await {
                Ok(token) => Response::Token { token },
                Err(error) => backend_error_response(&error),
            },
            Request::Status => Response::Status {
                status: Box::new(self.status()),
            },
            // Answered in `serve_connection`, which must stop after answering.
            Request::Shutdown => Response::ShuttingDown,
            Request::RecallVm { vm, subscriptions } => match VmQuery::parse(&vm) {
                Ok(query) => Response::Recalled {
                    vm: self
                        .lock_state()
                        .remembered
                        .iter()
                        .find(|known| known.is_for(&query, &subscriptions))
                        .cloned()
                        .map(Box::new),
                },
                Err(error) => error_response(ErrorKind::InvalidRequest, error.to_string()),
            },
            Request::RememberVm { vm } => {
                memory::remember(&mut self.lock_state().remembered, *vm);
                Response::Remembered
            }
            // Answered in `serve_connection`, which needs the shared handle.
            Request::OpenWindow { .. } => {
                error_response(ErrorKind::Internal, "open requests are served elsewhere")
            }
        }
    }

    async fn register(&self, window: AccessWindow) -> Response {
        match self.track(window).await {
            Ok(view) => Response::Window {
                window: Box::new(view),
            },
            Err(error) => Response::Error { error },
        }
    }

    /// Starts tracking a window (replacing one on the same VM).
    async fn track(&self, window: AccessWindow) -> Result<WindowView, ProtocolError> {
        if window.ports.is_empty() {
            return Err(ProtocolError::new(
                ErrorKind::InvalidRequest,
                "the window has no ports",
            ));
        }
        let clock = AzureClock::new(window.server_clock_offset_at_registration);
        let azure_now = clock.now();
        if window.ends_at <= azure_now {
            return Err(ProtocolError::new(
                ErrorKind::InvalidRequest,
                format!("the window on {} has already ended", window.vm_name),
            ));
        }
        let (view, notification) = {
            let mut state = self.lock_state();
            state.clock = clock;
            let tracked = self.fresh_tracking(window, azure_now);
            let view = view_of(&tracked, azure_now);
            state
                .windows
                .retain(|existing| !existing.window.same_vm(&tracked.window));
            state.windows.push(tracked);
            let notification = state
                .windows
                .last()
                .map(|tracked| notification_for(&state, tracked, NotificationKind::Opened));
            (view, notification)
        };
        tracing::info!(vm = %view.window.vm_name, ends_at = %view.window.ends_at, "window registered");
        self.save().await;
        self.windows_changed();
        if let Some(notification) = notification {
            let _ = self.notifications.send(notification);
        }
        Ok(view)
    }

    /// Answers `OpenWindow`: a landed flight's window that still answers, else the
    /// flight under way for the same key, else a new flight.
    async fn open_window(self: Arc<Self>, ask: OpenAsk) -> Response {
        let key = FlightKey::of(&ask);
        if let Some(opened) = self.still_open(&key, ask.reuse_margin).await {
            tracing::info!(vm = %ask.vm, "an open window answers; no request needed");
            return Response::Opened(Box::new(opened));
        }
        let (mut receiver, joined) = {
            let mut state = self.lock_state();
            match state.flights.iter().find(|(known, _)| *known == key) {
                Some((_, receiver)) => (receiver.clone(), true),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    state.flights.push((key.clone(), receiver.clone()));
                    let shared = Arc::clone(&self);
                    tokio::spawn(shared.fly(key, ask, sender));
                    (receiver, false)
                }
            }
        };
        let outcome = match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_closed) => None,
        };
        match outcome {
            Some(Ok(mut opened)) => {
                opened.joined = joined;
                Response::Opened(Box::new(opened))
            }
            Some(Err(error)) => Response::Error { error },
            None => error_response(ErrorKind::Internal, "the request ended without an answer"),
        }
    }

    /// A window a landed flight opened for `key`, if the agent still tracks it with at
    /// least `margin` left and its port answers now.
    async fn still_open(&self, key: &FlightKey, margin: SignedDuration) -> Option<Opened> {
        let candidate = {
            let mut state = self.lock_state();
            let azure_now = state.clock.now();
            let position = state.landed.iter().position(|(known, _)| known == key)?;
            let (_, opened) = &state.landed[position];
            let tracked = state.windows.iter().find(|tracked| {
                tracked.window.same_vm(&opened.window.window)
                    && tracked.window.requested_at == opened.window.window.requested_at
            });
            match tracked {
                Some(tracked) if tracked.window.ends_at.duration_since(azure_now) >= margin => {
                    let mut opened = opened.clone();
                    opened.window = view_of(tracked, azure_now);
                    opened
                }
                _ => {
                    state.landed.remove(position);
                    return None;
                }
            }
        };
        let port = candidate.ports.first()?;
        if answers_now(port, REUSE_PROBE_TIMEOUT).await {
            return Some(Opened {
                joined: false,
                reused: true,
                ..candidate
            });
        }
        self.lock_state().landed.retain(|(known, _)| known != key);
        None
    }

    /// One flight: opens access through the backend, tracks the window, remembers the
    /// VM, and answers everyone who asked.
    async fn fly(
        self: Arc<Self>,
        key: FlightKey,
        ask: OpenAsk,
        sender: watch::Sender<Option<FlightOutcome>>,
    ) {
        let remembered = VmQuery::parse(&ask.vm).ok().and_then(|query| {
            self.lock_state()
                .remembered
                .iter()
                .find(|known| known.is_for(&query, &ask.subscriptions))
                .cloned()
        });
        tracing::info!(vm = %ask.vm, warm = remembered.is_some(), "opening access for clients");
        let mut stopping = self.stopping.subscribe();
        let opened = tokio::select! {
            result = self.backend.open(&ask, remembered) => result,
            () = stopped(&mut stopping) => Err(BackendError::Unavailable("the agent is stopping".to_owned())),
        };
        let outcome = match opened {
            Ok(Granted {
                window,
                ports,
                remember,
            }) => {
                if let Some(vm) = remember {
                    memory::remember(&mut self.lock_state().remembered, vm);
                }
                match self.track(window.clone()).await {
                    Ok(view) => {
                        let opened = Opened {
                            window: view,
                            ports,
                            joined: false,
                            reused: false,
                        };
                        let mut state = self.lock_state();
                        state.landed.retain(|(known, _)| *known != key);
                        state.landed.push((key.clone(), opened.clone()));
                        Ok(opened)
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => {
                tracing::warn!(vm = %ask.vm, %error, "opening access for clients failed");
                match backend_error_response(&error) {
                    Response::Error { error } => Err(error),
                    _ => Err(ProtocolError::new(ErrorKind::Internal, error.to_string())),
                }
            }
        };
        self.lock_state().flights.retain(|(known, _)| *known != key);
        let _ = sender.send(Some(outcome));
    }

    /// A tracked window for a window that just opened or changed its end.
    fn fresh_tracking(&self, window: AccessWindow, azure_now: Timestamp) -> TrackedWindow {
        let time_left = window.ends_at.duration_since(azure_now);
        TrackedWindow {
            ends_soon_notified: schedule::too_short_for_warning(
                time_left,
                self.config.notify_before,
            ),
            window,
        }
    }

    fn list(&self) -> WindowList {
        let state = self.lock_state();
        let azure_now = state.clock.now();
        let mut windows: Vec<WindowView> = state
            .windows
            .iter()
            .map(|tracked| view_of(tracked, azure_now))
            .collect();
        windows.sort_by_key(|view| view.window.ends_at);
        WindowList { azure_now, windows }
    }

    async fn extend(&self, reference: &str, length: &ExtendLength) -> Response {
        let window = {
            let state = self.lock_state();
            let matching: Vec<&TrackedWindow> = state
                .windows
                .iter()
                .filter(|tracked| tracked.window.matches(reference))
                .collect();
            match matching.as_slice() {
                [] => {
                    return error_response(
                        ErrorKind::NotFound,
                        format!("no open window for {reference}"),
                    );
                }
                [one] => one.window.clone(),
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|tracked| {
                            format!(
                                "{}/{}",
                                tracked.window.resource_group, tracked.window.vm_name
                            )
                        })
                        .collect();
                    return error_response(
                        ErrorKind::Ambiguous,
                        format!(
                            "{reference} matches several windows: {}; name one as resource-group/name",
                            names.join(", ")
                        ),
                    );
                }
            }
        };
        let extended = match self.backend.extend(&window, length).await {
            Ok(extended) => extended,
            Err(error) => return backend_error_response(&error),
        };
        let clock = AzureClock::new(extended.server_clock_offset_at_registration);
        let azure_now = clock.now();
        let view = {
            let mut state = self.lock_state();
            state.clock = clock;
            let tracked = self.fresh_tracking(extended, azure_now);
            let view = view_of(&tracked, azure_now);
            state.windows.retain(|existing| {
                !existing.window.same_vm(&tracked.window) && !existing.window.same_vm(&window)
            });
            state.windows.push(tracked);
            view
        };
        tracing::info!(vm = %view.window.vm_name, ends_at = %view.window.ends_at, "window extended");
        self.save().await;
        self.windows_changed();
        Response::Window {
            window: Box::new(view),
        }
    }

    /// Re-reads the tracked windows from Azure and applies what changed.
    async fn refresh_once(&self) -> Result<(), BackendError> {
        let _gate = self.refresh_gate.lock().await;
        let asked: Vec<AccessWindow> = self
            .lock_state()
            .windows
            .iter()
            .map(|tracked| tracked.window.clone())
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let refreshed = match self.backend.refresh(&asked).await {
            Ok(refreshed) => refreshed,
            Err(error) => {
                tracing::warn!(%error, "re-reading windows from Azure failed");
                self.lock_state().last_refresh_error = Some(error.to_string());
                return Err(error);
            }
        };
        let notifications = self.apply_refresh(&asked, refreshed);
        self.save().await;
        self.windows_changed();
        for notification in notifications {
            let _ = self.notifications.send(notification);
        }
        Ok(())
    }

    fn apply_refresh(&self, asked: &[AccessWindow], refreshed: Refreshed) -> Vec<Notification> {
        let mut state = self.lock_state();
        if let Some(offset) = refreshed.server_clock_offset {
            state.clock = AzureClock::new(offset);
        }
        let azure_now = state.clock.now();
        let mut notifications = Vec::new();
        for update in refreshed.updates {
            match update {
                WindowUpdate::Unchanged { .. } => {}
                WindowUpdate::Changed(window) => {
                    let window = *window;
                    let Some(index) = state
                        .windows
                        .iter()
                        .position(|tracked| tracked.window.same_vm(&window))
                    else {
                        continue;
                    };
                    let current = &state.windows[index];
                    // A window registered while Azure was being asked is newer: keep it.
                    if window.requested_at < current.window.requested_at {
                        continue;
                    }
                    let replacement = if window.ends_at == current.window.ends_at {
                        TrackedWindow {
                            window,
                            ends_soon_notified: current.ends_soon_notified,
                        }
                    } else {
                        self.fresh_tracking(window, azure_now)
                    };
                    state.windows[index] = replacement;
                }
                WindowUpdate::Revoked { vm_id } => {
                    let Some(index) = state.windows.iter().position(|tracked| {
                        tracked.window.vm_id.eq_ignore_ascii_case(&vm_id)
                            && asked.iter().any(|asked| asked == &tracked.window)
                    }) else {
                        continue;
                    };
                    let reason = if azure_now >= state.windows[index].window.ends_at {
                        EndReason::Expired
                    } else {
                        EndReason::Revoked
                    };
                    notifications.push(notification_for(
                        &state,
                        &state.windows[index],
                        NotificationKind::Ended(reason),
                    ));
                    state.windows.remove(index);
                }
            }
        }
        state.last_refresh = Some(Timestamp::now());
        state.last_refresh_error = None;
        notifications
    }

    /// Wakes the scheduler and shows the desktop the new window list.
    fn windows_changed(&self) {
        self.changed.notify_one();
        self.publish_windows();
    }

    fn publish_windows(&self) {
        self.published_windows.send_replace(self.list());
    }

    /// Carries out what the user picked in the tray or on a notification.
    async fn run_desktop_requests(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<DesktopRequest>,
    ) {
        let mut stopping = self.stopping.subscribe();
        loop {
            let request = tokio::select! {
                next = requests.recv() => match next {
                    Some(request) => request,
                    None => return,
                },
                () = stopped(&mut stopping) => return,
            };
            self.lock_state().last_activity = tokio::time::Instant::now();
            match request {
                DesktopRequest::Extend { vm_id } => tokio::select! {
                    () = self.extend_from_desktop(&vm_id) => {}
                    () = stopped(&mut stopping) => return,
                },
                DesktopRequest::EndTracking { vm_id } => self.end_tracking(&vm_id).await,
                DesktopRequest::Quit => {
                    tracing::info!("quit chosen from the tray");
                    self.request_stop();
                    return;
                }
            }
        }
    }

    /// Extends by the policy maximum through the same path as `ExtendWindow`, and says
    /// how it went (the person who clicked has no terminal to read).
    async fn extend_from_desktop(&self, vm_id: &str) {
        let response = self.extend(vm_id, &ExtendLength::PolicyMaximum).await;
        let (kind, detail) = match response {
            Response::Window { .. } => (NotificationKind::Extended, None),
            Response::Error { error } => {
                tracing::warn!(vm = %vm_id, %error, "extending from the desktop failed");
                (NotificationKind::ExtendFailed, Some(error.message))
            }
            _ => return,
        };
        let notification = {
            let state = self.lock_state();
            state
                .windows
                .iter()
                .find(|tracked| tracked.window.vm_id.eq_ignore_ascii_case(vm_id))
                .map(|tracked| {
                    let mut notification = notification_for(&state, tracked, kind);
                    notification.detail = detail;
                    notification
                })
        };
        if let Some(notification) = notification {
            let _ = self.notifications.send(notification);
        }
    }

    /// Forgets a window (the tray's "End tracking"): no more reminders or refreshes for
    /// it. Azure is not asked to close it.
    async fn end_tracking(&self, vm_id: &str) {
        let removed = {
            let mut state = self.lock_state();
            let before = state.windows.len();
            state
                .windows
                .retain(|tracked| !tracked.window.vm_id.eq_ignore_ascii_case(vm_id));
            before - state.windows.len()
        };
        if removed == 0 {
            tracing::debug!(vm = %vm_id, "asked to stop tracking a window that is not tracked");
            return;
        }
        tracing::info!(vm = %vm_id, "stopped tracking a window, as asked from the tray");
        self.save().await;
        self.windows_changed();
    }

    fn status(&self) -> AgentStatus {
        let state = self.lock_state();
        let store_problem = match (&state.load_problem, &state.save_problem) {
            (Some(load), Some(save)) => Some(format!("{load}; {save}")),
            (load, save) => load.clone().or_else(|| save.clone()),
        };
        AgentStatus {
            agent_version: self.config.agent_version.clone(),
            protocol_version: PROTOCOL_VERSION,
            pid: std::process::id(),
            profile: self.config.profile.clone(),
            started_at: self.started_at,
            endpoint: self.config.paths.endpoint_display(),
            state_file: self.store.path().to_path_buf(),
            open_windows: state.windows.len(),
            server_clock_offset: state.clock.offset(),
            notify_before: self.config.notify_before,
            refresh_interval: SignedDuration::try_from(self.config.refresh_interval)
                .unwrap_or(SignedDuration::MAX),
            backend: self.backend.describe(),
            last_refresh: state.last_refresh,
            last_refresh_error: state.last_refresh_error.clone(),
            store_problem,
            notifier_problem: self.notifier.problem(),
        }
    }

    /// Writes the state file; a failure is logged and shown in the status, and the
    /// agent goes on (the windows are still in memory).
    async fn save(&self) {
        let _gate = self.save_gate.lock().await;
        let snapshot = {
            let state = self.lock_state();
            StoredState {
                server_clock_offset: state.clock.offset(),
                windows: state.windows.clone(),
            }
        };
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.save(&snapshot)).await;
        let problem = match result {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(error) => Some(format!("saving the state file failed: {error}")),
        };
        if let Some(problem) = &problem {
            tracing::error!(%problem, "could not save the agent's windows");
        }
        self.lock_state().save_problem = problem;
    }

    async fn run_scheduler(self: Arc<Self>) {
        let mut stopping = self.stopping.subscribe();
        loop {
            self.fire_due().await;
            // `None`: no window, so nothing can become due until one is registered (an
            // agent at rest has no timer).
            let wait = {
                let state = self.lock_state();
                schedule::next_deadline(&state.windows, self.config.notify_before).map(|deadline| {
                    let until = deadline.duration_since(state.clock.now());
                    Duration::try_from(until)
                        .unwrap_or(Duration::ZERO)
                        .min(MAX_SCHEDULER_SLEEP)
                })
            };
            tokio::select! {
                () = tokio::time::sleep(wait.unwrap_or(Duration::ZERO)), if wait.is_some() => {}
                () = self.changed.notified() => {}
                () = stopped(&mut stopping) => return,
            }
        }
    }

    /// Sends what is due now and stops tracking windows that ended.
    async fn fire_due(&self) {
        let notifications = {
            let mut state = self.lock_state();
            let azure_now = state.clock.now();
            let due = schedule::due_events(&state.windows, azure_now, self.config.notify_before);
            let mut notifications = Vec::new();
            for (vm_id, event) in due {
                let Some(index) = state
                    .windows
                    .iter()
                    .position(|tracked| tracked.window.vm_id == vm_id)
                else {
                    continue;
                };
                match event {
                    Due::EndsSoon => {
                        state.windows[index].ends_soon_notified = true;
                        notifications.push(notification_for(
                            &state,
                            &state.windows[index],
                            NotificationKind::EndsSoon,
                        ));
                    }
                    Due::Ended => {
                        notifications.push(notification_for(
                            &state,
                            &state.windows[index],
                            NotificationKind::Ended(EndReason::Expired),
                        ));
                        let ended = state.windows.remove(index);
                        tracing::info!(vm = %ended.window.vm_name, "window ended");
                    }
                }
            }
            notifications
        };
        if notifications.is_empty() {
            return;
        }
        self.save().await;
        self.publish_windows();
        for notification in notifications {
            let _ = self.notifications.send(notification);
        }
    }

    async fn run_refresher(self: Arc<Self>) {
        let mut stopping = self.stopping.subscribe();
        let mut windows = self.published_windows.subscribe();
        loop {
            // With no window there is nothing to re-read: wait for one, not for a timer.
            tokio::select! {
                open = async { windows.wait_for(|list| !list.windows.is_empty()).await.map(|_| ()) } => {
                    if open.is_err() {
                        return;
                    }
                }
                () = stopped(&mut stopping) => return,
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.refresh_interval) => {}
                () = stopped(&mut stopping) => return,
            }
            let _ = self.refresh_once().await;
        }
    }

    async fn run_idle_watch(self: Arc<Self>, idle: Duration) {
        let mut stopping = self.stopping.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(idle) => {}
                () = stopped(&mut stopping) => return,
            }
            let idle_now = {
                let state = self.lock_state();
                state.windows.is_empty() && state.last_activity.elapsed() >= idle
            };
            if idle_now {
                tracing::info!("no windows and no requests for a while: stopping");
                self.request_stop();
                return;
            }
        }
    }

    async fn run_notifications(self: Arc<Self>, mut queue: mpsc::UnboundedReceiver<Notification>) {
        let mut stopping = self.stopping.subscribe();
        loop {
            tokio::select! {
                next = queue.recv() => match next {
                    Some(notification) => self.notifier.notify(&notification).await,
                    None => return,
                },
                () = stopped(&mut stopping) => break,
            }
        }
        // Say what was already decided, briefly.
        let drain = async {
            while let Ok(notification) = queue.try_recv() {
                self.notifier.notify(&notification).await;
            }
        };
        let _ = tokio::time::timeout(NOTIFICATION_DRAIN, drain).await;
    }
}

/// Completes once the agent is stopping (or the sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

fn view_of(tracked: &TrackedWindow, azure_now: Timestamp) -> WindowView {
    WindowView {
        window: tracked.window.clone(),
        time_left: tracked
            .window
            .ends_at
            .duration_since(azure_now)
            .max(SignedDuration::ZERO),
        ends_soon_notified: tracked.ends_soon_notified,
    }
}

/// A notification about `tracked`. The VM is named as `resource-group/name` in the
/// commands it suggests: a bare name may match VMs the agent does not track.
fn notification_for(
    state: &State,
    tracked: &TrackedWindow,
    kind: NotificationKind,
) -> Notification {
    let window = &tracked.window;
    let vm_reference = window.vm_reference();
    let azure_now = state.clock.now();
    let actions = if kind == NotificationKind::EndsSoon {
        vec![NotificationAction::Extend]
    } else {
        Vec::new()
    };
    Notification {
        kind,
        vm_id: window.vm_id.clone(),
        vm_name: window.vm_name.clone(),
        resource_group: window.resource_group.clone(),
        vm_reference,
        ports: window.port_numbers(),
        ends_at_local: window
            .ends_at
            .checked_sub(state.clock.offset())
            .unwrap_or(window.ends_at),
        time_left: window
            .ends_at
            .duration_since(azure_now)
            .max(SignedDuration::ZERO),
        actions,
        detail: None,
    }
}

fn error_response(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        error: ProtocolError::new(kind, message),
    }
}

fn backend_error_response(error: &BackendError) -> Response {
    let kind = match error {
        BackendError::Unavailable(_) => ErrorKind::Unavailable,
        BackendError::Azure(_) => ErrorKind::Backend,
        BackendError::Invalid(_) => ErrorKind::InvalidRequest,
    };
    error_response(kind, error.to_string())
}
