//! The SSH server of an emulated Linux VM (russh).
//!
//! It behaves like the `sshd` of an Azure Linux VM created with password authentication
//! off: only the admin user may log in, only with one of its authorised public keys; a
//! session channel runs one command (`exec`) or a login shell (`shell`, with or without a
//! pty) through [`super::shell`], and reports the exit status, end of file and close the
//! way OpenSSH expects, so `ssh host cmd` exits with the command's status. Several
//! channels may share one connection, as OpenSSH multiplexing does. Forwarding, X11,
//! agent forwarding and subsystems (sftp) are refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};

use super::SshService;
use super::shell::{InteractiveShell, ShellOutput, run_command_line};

/// How long a rejected authentication attempt is held before the answer, to slow down
/// guessing. russh's default is a second; the emulator only ever faces its own tests and
/// users, so it keeps the delay short.
const AUTH_REJECTION_TIME: Duration = Duration::from_millis(20);
/// How often a silent session is probed, and how many unanswered probes end it: a client
/// that vanished without closing its socket is noticed after about two minutes, while an
/// idle session that answers lives as long as it likes, as with sshd.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_MAX: usize = 4;
/// As `MaxSessions` in sshd: the most session channels one connection may hold open.
const MAX_CHANNELS_PER_CONNECTION: usize = 10;

/// The russh server configuration for one VM: its host key, public-key authentication
/// only.
pub(crate) fn server_config(service: &SshService) -> Arc<russh::server::Config> {
    Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: AUTH_REJECTION_TIME,
        // Every OpenSSH client first asks for "none" to learn the methods; that is not a
        // guess worth slowing down.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![service.host_key.clone()],
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        ..russh::server::Config::default()
    })
}

/// What a session channel is doing.
#[derive(Debug)]
enum ChannelState {
    /// Opened; waiting for `exec` or `shell`. `terminal` is set by a pty request.
    Open { terminal: bool },
    /// Running a login shell.
    Shell(InteractiveShell),
    /// The command or shell has ended and the channel is closed on our side.
    Finished,
}

/// One SSH connection to an emulated VM.
#[derive(Debug)]
pub(crate) struct SshConnection {
    service: Arc<SshService>,
    channels: HashMap<ChannelId, ChannelState>,
    /// The connection's span (VM port and peer). russh calls the handler on its own
    /// task, outside the span the connection runs in, so log lines name it as parent.
    span: tracing::Span,
}

impl SshConnection {
    pub(crate) fn new(service: Arc<SshService>, span: tracing::Span) -> Self {
        Self {
            service,
            channels: HashMap::new(),
            span,
        }
    }

    /// Whether `user` may log in with `key`: the admin user, with one of its keys
    /// (compared by key material; comments do not matter, as in `authorized_keys`).
    fn is_authorized(&self, user: &str, key: &PublicKey) -> bool {
        user == self.service.admin_user
            && self
                .service
                .authorized_keys
                .iter()
                .any(|authorized| authorized.key_data() == key.key_data())
    }

    /// Sends what a command or shell produced on `channel`; when it has ended, sends
    /// end of file, the exit status and close, and forgets the shell.
    fn send(
        &mut self,
        channel: ChannelId,
        output: ShellOutput,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !output.stdout.is_empty() {
            session.data(channel, output.stdout)?;
        }
        if !output.stderr.is_empty() {
            session.extended_data(channel, 1, output.stderr)?;
        }
        if let Some(status) = output.exit_status {
            session.eof(channel)?;
            session.exit_status_request(channel, status)?;
            session.close(channel)?;
            self.channels.insert(channel, ChannelState::Finished);
            tracing::debug!(parent: &self.span, ?channel, status, "ssh channel finished");
        }
        Ok(())
    }
}

impl russh::server::Handler for SshConnection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.is_authorized(user, offer.public_key) {
            Ok(Auth::Accept)
        } else {
            tracing::debug!(parent: &self.span, user, "ssh public key not authorised");
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.is_authorized(user, key.public_key) {
            tracing::info!(parent: &self.span, user, "ssh login");
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let open = self
            .channels
            .values()
            .filter(|state| !matches!(state, ChannelState::Finished))
            .count();
        if open >= MAX_CHANNELS_PER_CONNECTION {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        // The handler answers every request through its callbacks, so the channel's own
        // message stream is not needed; dropping it does not close the channel.
        self.channels
            .insert(channel.id(), ChannelState::Open { terminal: false });
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the trait's signature
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(ChannelState::Open { terminal }) => {
                *terminal = true;
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(parent: &self.span, name, "ssh subsystem refused");
        session.channel_failure(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(ChannelState::Open { terminal }) = self.channels.get(&channel) else {
            return session.channel_failure(channel);
        };
        let terminal = *terminal;
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data);
        tracing::debug!(parent: &self.span, %command, "ssh exec");
        let result = run_command_line(&self.service, &command, 0);
        let output = if terminal {
            // On a pty, standard error reaches the terminal too, with `\r\n` line ends.
            let text = format!("{}{}", result.stdout, result.stderr).replace('\n', "\r\n");
            ShellOutput {
                stdout: text.into_bytes(),
                stderr: Vec::new(),
                exit_status: Some(u32::from(result.status)),
            }
        } else {
            ShellOutput {
                stdout: result.stdout.into_bytes(),
                stderr: result.stderr.into_bytes(),
                exit_status: Some(u32::from(result.status)),
            }
        };
        self.send(channel, output, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(ChannelState::Open { terminal }) = self.channels.get(&channel) else {
            return session.channel_failure(channel);
        };
        let shell = InteractiveShell::new(*terminal);
        session.channel_success(channel)?;
        tracing::debug!(parent: &self.span, terminal = *terminal, "ssh shell");
        let output = shell.start(&self.service);
        self.channels.insert(channel, ChannelState::Shell(shell));
        self.send(channel, output, session)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Input to an `exec` command is read by nobody, as with a command that ignores
        // its standard input.
        let Some(ChannelState::Shell(shell)) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let output = shell.input(&self.service, data);
        self.send(channel, output, session)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(ChannelState::Shell(shell)) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let output = shell.end_of_input(&self.service);
        self.send(channel, output, session)
    }
}
