//! The CLI's side of the agent: connect, handshake, typed calls, and starting the agent
//! on demand.
//!
//! [`ensure_running`] is what `jit connect` calls: connect to a running agent of the
//! same version, or replace one of another version, or start one (under a start lock,
//! so two terminals running `jit` at once start one agent), and wait a bounded time
//! until it answers. Every failure is a [`StartError`] whose message says what to do;
//! the CLI prints it once and carries on without the agent (headless machines, CI).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{BufReader, ReadHalf, WriteHalf};
use tokio::time::Instant;

use super::paths::AgentPaths;
use super::protocol::{
    AccessToken, AccessWindow, AgentStatus, ExtendLength, OpenAsk, Opened, PROTOCOL_VERSION,
    ProtocolError, RememberedVm, Request, Response, Welcome, WindowList, WindowView,
};
use super::server::open_lock_file;
use super::transport::{self, BoxedStream, FrameError};

/// How long a quick request (list, register, status) may take.
const QUICK_CALL: Duration = Duration::from_secs(10);
/// How long a request that goes to Azure (extend, refresh, token) may take.
const AZURE_CALL: Duration = Duration::from_secs(120);
/// How often to look again while waiting for an agent to start or stop.
const POLL_INTERVAL: Duration = Duration::from_millis(40);

/// Why talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepts connections at the endpoint.
    #[error("no agent is running at {endpoint}")]
    NotRunning {
        /// The endpoint tried.
        endpoint: String,
        /// The connect error.
        #[source]
        source: io::Error,
    },
    /// What listens at the endpoint runs as another user; nothing was sent to it.
    #[error("refusing the agent at {endpoint}: {reason}")]
    Stranger {
        /// The endpoint tried.
        endpoint: String,
        /// Who it is.
        reason: String,
    },
    /// The agent did not answer within the time allowed.
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke.
    #[error("the connection to the agent failed: {0}")]
    Io(#[from] io::Error),
    /// The agent sent something that is not a valid answer.
    #[error("the agent sent an unexpected answer: {0}")]
    Protocol(String),
    /// The agent answered with an error.
    #[error(transparent)]
    Agent(#[from] ProtocolError),
}

/// A connection to the agent, after the handshake.
pub struct AgentClient {
    reader: BufReader<ReadHalf<BoxedStream>>,
    writer: WriteHalf<BoxedStream>,
    welcome: Welcome,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AgentClient")
            .field("welcome", &self.welcome)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// Connects and exchanges `Hello`/`Welcome`, within `timeout`. An agent of another
    /// version still connects: check [`AgentClient::welcome`] before other calls.
    pub async fn connect(
        paths: &AgentPaths,
        client_version: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let deadline = Instant::now() + timeout;
        let stream = transport::connect(paths, timeout).await.map_err(|source| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                ClientError::Stranger {
                    endpoint: paths.endpoint_display(),
                    reason: source.to_string(),
                }
            } else {
                ClientError::NotRunning {
                    endpoint: paths.endpoint_display(),
                    source,
                }
            }
        })?;
        let (read_half, write_half) = tokio::io::split(stream);
        let mut client = Self {
            reader: BufReader::new(read_half),
            writer: write_half,
            welcome: Welcome {
                protocol_version: 0,
                agent_version: String::new(),
                pid: 0,
                profile: None,
            },
        };
        let hello = Request::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: client_version.to_owned(),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match client.exchange(&hello, remaining).await? {
            Response::Welcome(welcome) => client.welcome = welcome,
            other => return Err(unexpected(&other)),
        }
        Ok(client)
    }

    /// What the agent said about itself.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Whether the agent runs this protocol and program version (and, when given, this
    /// profile).
    pub fn is_same_version(&self, client_version: &str, profile: Option<&str>) -> bool {
        self.welcome.protocol_version == PROTOCOL_VERSION
            && self.welcome.agent_version == client_version
            && profile.is_none_or(|profile| self.welcome.profile.as_deref() == Some(profile))
    }

    /// Hands a window to the agent.
    pub async fn register_window(
        &mut self,
        window: &AccessWindow,
    ) -> Result<WindowView, ClientError> {
        let request = Request::RegisterWindow {
            window: Box::new(window.clone()),
        };
        match self.call(&request, QUICK_CALL).await? {
            Response::Window { window } => Ok(*window),
            other => Err(unexpected(&other)),
        }
    }

    /// The windows the agent tracks.
    pub async fn list_windows(&mut self) -> Result<WindowList, ClientError> {
        match self.call(&Request::ListWindows, QUICK_CALL).await? {
            Response::Windows(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to extend the window of `vm` (id, `group/name` or name).
    pub async fn extend_window(
        &mut self,
        vm: &str,
        length: ExtendLength,
    ) -> Result<WindowView, ClientError> {
        let request = Request::ExtendWindow {
            vm: vm.to_owned(),
            length,
        };
        match self.call(&request, AZURE_CALL).await? {
            Response::Window { window } => Ok(*window),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to re-read every window from Azure now.
    pub async fn refresh_now(&mut self) -> Result<WindowList, ClientError> {
        match self.call(&Request::RefreshNow, AZURE_CALL).await? {
            Response::Windows(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }

    /// A warm token for `scope` from the agent's credential.
    pub async fn token(&mut self, scope: &str) -> Result<AccessToken, ClientError> {
        let request = Request::GetToken {
            scope: scope.to_owned(),
        };
        match self.call(&request, AZURE_CALL).await? {
            Response::Token { token } => Ok(token),
            other => Err(unexpected(&other)),
        }
    }

    /// What the agent remembers about the VM named `vm` in `subscriptions`.
    pub async fn recall_vm(
        &mut self,
        vm: &str,
        subscriptions: &[String],
    ) -> Result<Option<RememberedVm>, ClientError> {
        let request = Request::RecallVm {
            vm: vm.to_owned(),
            subscriptions: subscriptions.to_vec(),
        };
        match self.call(&request, QUICK_CALL).await? {
            Response::Recalled { vm } => Ok(vm.map(|vm| *vm)),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to remember a VM.
    pub async fn remember_vm(&mut self, vm: RememberedVm) -> Result<(), ClientError> {
        let request = Request::RememberVm { vm: Box::new(vm) };
        match self.call(&request, QUICK_CALL).await? {
            Response::Remembered => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to open access (sharing a request with other clients asking for
    /// the same VM at once); waits as long as the ask's timeout and the calls before it
    /// may take.
    pub async fn open_window(&mut self, ask: OpenAsk) -> Result<Opened, ClientError> {
        let waiting = Duration::try_from(ask.timeout).unwrap_or(Duration::ZERO);
        let request = Request::OpenWindow { ask: Box::new(ask) };
        match self.call(&request, AZURE_CALL + waiting).await? {
            Response::Opened(opened) => Ok(*opened),
            other => Err(unexpected(&other)),
        }
    }

    /// The agent's health.
    pub async fn status(&mut self) -> Result<AgentStatus, ClientError> {
        match self.call(&Request::Status, QUICK_CALL).await? {
            Response::Status { status } => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to stop. It answers before it stops; use [`wait_until_stopped`]
    /// to know it is gone.
    pub async fn shutdown(mut self) -> Result<(), ClientError> {
        match self.call(&Request::Shutdown, QUICK_CALL).await? {
            Response::ShuttingDown => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// One request and its answer; an error answer becomes [`ClientError::Agent`].
    async fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        match self.exchange(request, timeout).await? {
            Response::Error { error } => Err(ClientError::Agent(error)),
            response => Ok(response),
        }
    }

    async fn exchange(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let exchange = async {
            transport::write_message(&mut self.writer, request).await?;
            let line = match transport::read_line(&mut self.reader).await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the agent closed the connection",
                    )));
                }
                Err(FrameError::Io(error)) => return Err(ClientError::Io(error)),
                Err(FrameError::TooLong) => {
                    return Err(ClientError::Protocol(
                        "an answer too long to read".to_owned(),
                    ));
                }
            };
            serde_json::from_slice::<Response>(&line)
                .map_err(|error| ClientError::Protocol(error.to_string()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_elapsed| ClientError::Timeout(timeout))?
    }
}

fn unexpected(response: &Response) -> ClientError {
    let kind = serde_json::to_value(response)
        .ok()
        .and_then(|value| {
            value
                .get("type")
                .and_then(|kind| kind.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    ClientError::Protocol(format!("a {kind} message where another was expected"))
}

/// How [`ensure_running`] finds and starts the agent.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The agent's directories.
    pub paths: AgentPaths,
    /// This program's version; an agent of another version is replaced.
    pub client_version: String,
    /// The profile the agent must run with (`None`: any).
    pub profile: Option<String>,
    /// How long to wait for a new agent to answer, or an old one to stop.
    pub start_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
}

impl StartOptions {
    /// Waits up to 10 s for an agent to start, 2 s for a connection.
    pub fn new(paths: AgentPaths, client_version: impl Into<String>) -> Self {
        Self {
            paths,
            client_version: client_version.into(),
            profile: None,
            start_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// How [`ensure_running`] got its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// One was already running.
    AlreadyRunning,
    /// None was running; one was started.
    Spawned,
    /// One of another version (or profile) was running; it was stopped and a new one
    /// started.
    Replaced {
        /// The old agent's version.
        previous_version: String,
    },
}

/// Why no agent could be reached or started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The runtime directory could not be prepared.
    #[error("cannot use {path} for the agent: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The start lock could not be taken within the start timeout.
    #[error("another `jit` is starting the agent and did not finish within {0:?}")]
    StartLockBusy(Duration),
    /// The agent program could not be started.
    #[error("could not start the agent: {0}")]
    Spawn(#[source] io::Error),
    /// The agent program exited before answering.
    #[error("the agent exited at once ({status}); see {}", log_file.display())]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Where it logs.
        log_file: PathBuf,
    },
    /// The agent did not answer within the start timeout.
    #[error("the agent did not answer within {waited:?}; see {}", log_file.display())]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// Where it logs.
        log_file: PathBuf,
    },
    /// An agent of another version did not stop when asked.
    #[error(
        "the running agent (version {version}, process {pid}) did not stop when asked; stop it with `jit agent stop` or end process {pid}"
    )]
    OldAgentStayed {
        /// Its version.
        version: String,
        /// Its process id.
        pid: u32,
    },
    /// An agent runs but talking to it failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Connects to the agent, starting it with `spawn` if none runs, and replacing one of
/// another version. `spawn` must start the agent detached (see [`background_command`]).
pub async fn ensure_running(
    options: &StartOptions,
    spawn: impl Fn() -> io::Result<Child>,
) -> Result<(AgentClient, Started), StartError> {
    let mut started = Started::Spawned;
    if let Some(client) = connect_if_running(options).await? {
        if is_wanted(&client, options) {
            return Ok((client, Started::AlreadyRunning));
        }
        let previous = client.welcome().clone();
        tracing::info!(
            old = %previous.agent_version,
            new = %options.client_version,
            "replacing an agent of another version"
        );
        client.shutdown().await?;
        if !wait_until_stopped(&options.paths, options.start_timeout).await {
            return Err(StartError::OldAgentStayed {
                version: previous.agent_version,
                pid: previous.pid,
            });
        }
        started = Started::Replaced {
            previous_version: previous.agent_version,
        };
    }

    let runtime_dir = options.paths.runtime_dir();
    transport::prepare_private_dir(runtime_dir).map_err(|source| StartError::Directory {
        path: runtime_dir.to_path_buf(),
        source,
    })?;
    let _start_lock = take_start_lock(options).await?;
    // Someone may have started it while this process waited for the lock.
    if let Some(client) = connect_if_running(options).await?
        && is_wanted(&client, options)
    {
        return Ok((client, started));
    }

    let mut child = spawn().map_err(StartError::Spawn)?;
    tracing::debug!(pid = child.id(), "started the agent");
    let deadline = Instant::now() + options.start_timeout;
    let mut exit_status = None;
    loop {
        if let Ok(client) = AgentClient::connect(
            &options.paths,
            &options.client_version,
            options.connect_timeout,
        )
        .await
        {
            if is_wanted(&client, options) {
                return Ok((client, started));
            }
            return Err(StartError::Client(ClientError::Protocol(mismatch(
                &client, options,
            ))));
        }
        if exit_status.is_none() {
            exit_status = child.try_wait().ok().flatten();
        }
        if let Some(status) = exit_status
            && instance_lock_is_free(&options.paths)
        {
            // It exited and no other agent is on its way.
            return Err(StartError::Exited {
                status,
                log_file: options.paths.log_file(),
            });
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout {
                waited: options.start_timeout,
                log_file: options.paths.log_file(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Connects if an agent answers, without starting one; `None` when nothing listens.
pub async fn connect_if_running(
    options: &StartOptions,
) -> Result<Option<AgentClient>, ClientError> {
    match AgentClient::connect(
        &options.paths,
        &options.client_version,
        options.connect_timeout,
    )
    .await
    {
        Ok(client) => Ok(Some(client)),
        Err(ClientError::NotRunning { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Why the agent that answered after a start is not the one wanted, in words.
fn mismatch(client: &AgentClient, options: &StartOptions) -> String {
    let welcome = client.welcome();
    if welcome.protocol_version != PROTOCOL_VERSION
        || welcome.agent_version != options.client_version
    {
        // Another client started an agent of another version at the same moment.
        return format!(
            "an agent of version {} (protocol {}) answered instead of version {}",
            welcome.agent_version, welcome.protocol_version, options.client_version
        );
    }
    format!(
        "the agent that answered serves another Azure sign-in ({}) than this command ({})",
        welcome.profile.as_deref().unwrap_or("none"),
        options.profile.as_deref().unwrap_or("none")
    )
}

fn is_wanted(client: &AgentClient, options: &StartOptions) -> bool {
    client.is_same_version(&options.client_version, options.profile.as_deref())
}

/// Takes the start lock, waiting up to the start timeout for another `jit` to finish.
async fn take_start_lock(options: &StartOptions) -> Result<File, StartError> {
    let path = options.paths.start_lock();
    let file = open_lock_file(&path).map_err(|source| StartError::Directory {
        path: path.clone(),
        source,
    })?;
    let deadline = Instant::now() + options.start_timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StartError::StartLockBusy(options.start_timeout));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StartError::Directory { path, source });
            }
        }
    }
}

/// Waits until no agent holds the instance lock, up to `timeout`; `true` when it is free.
pub async fn wait_until_stopped(paths: &AgentPaths, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if instance_lock_is_free(paths) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether no agent holds the instance lock (probing takes and releases it at once).
fn instance_lock_is_free(paths: &AgentPaths) -> bool {
    let path = paths.instance_lock();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Err(error) if error.kind() == io::ErrorKind::NotFound => true,
        Err(_) => false,
        Ok(file) => file.try_lock().is_ok(),
    }
}

/// A command that runs `program` in the background: no terminal stdio, its own process
/// group (so Ctrl-C in the terminal that started it does not reach it), and on Windows
/// detached from the console.
pub fn background_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0).current_dir("/");
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    command
}
