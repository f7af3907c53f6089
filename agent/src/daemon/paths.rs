//! Where the agent keeps its socket, locks, state file and log.
//!
//! Two directories, both private to the user:
//!
//! - the **runtime dir** holds what only makes sense while the agent runs: the socket
//!   and the lock files. `$XDG_RUNTIME_DIR/jit` on Linux (tmpfs, per user, cleaned at
//!   logout), the per-user `$TMPDIR` on macOS, else the state dir.
//! - the **state dir** holds what must survive a restart: `windows.json` and the log.
//!   `directories`' state dir (`~/.local/state/jit`); macOS and Windows have none, so
//!   the local data dir there.
//!
//! Callers may override either (the CLI reads `JIT_RUNTIME_DIR` / `JIT_STATE_DIR`); this
//! module never reads `jit`'s own environment variables, so tests pass paths instead.
//! On Windows the endpoint is a named pipe named after the user's SID and the runtime
//! dir (`\\.\pipe\jit-agent-S-1-5-21-…-<hash>`): two users never share a name, and
//! two agents of one user with different runtime dirs (tests) do not either. The pipe's
//! protection is in `windows_pipe`.
//!
//! Where things end up by default (the `directories` crate):
//!
//! | OS | state dir | runtime dir |
//! |---|---|---|
//! | Linux | `$XDG_STATE_HOME/jit` (`~/.local/state/jit`) | `$XDG_RUNTIME_DIR/jit` |
//! | macOS | `~/Library/Application Support/jit` | `$TMPDIR/jit` |
//! | Windows | `%LOCALAPPDATA%\jit\data` | the state dir |

use std::path::{Path, PathBuf};

/// The directories and file names the agent and its clients agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    runtime_dir: PathBuf,
    state_dir: PathBuf,
}

/// Why the default directories could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// No home directory, so no per-user directories.
    #[error(
        "cannot find a home directory for the agent's files; set JIT_STATE_DIR and JIT_RUNTIME_DIR"
    )]
    NoHome,
}

impl AgentPaths {
    /// Uses exactly these directories.
    pub fn new(runtime_dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            runtime_dir: runtime_dir.into(),
            state_dir: state_dir.into(),
        }
    }

    /// The per-user defaults, with the caller's overrides taking precedence.
    pub fn resolve(
        runtime_dir: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> Result<Self, PathsError> {
        let state_dir = match state_dir {
            Some(dir) => dir,
            None => default_state_dir().ok_or(PathsError::NoHome)?,
        };
        let runtime_dir = runtime_dir
            .or_else(default_runtime_dir)
            .unwrap_or_else(|| state_dir.clone());
        Ok(Self {
            runtime_dir,
            state_dir,
        })
    }

    /// The directory of the socket and lock files.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// The directory of the state file and log.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The Unix socket the agent listens on.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join("agent.sock")
    }

    /// The named pipe the agent listens on: per user (SID) and per runtime dir.
    #[cfg(windows)]
    pub fn pipe_name(&self) -> std::io::Result<String> {
        let user = super::windows_pipe::current_user()?;
        Ok(pipe_name_for(user.text(), &self.runtime_dir))
    }

    /// The endpoint clients connect to, as shown to users.
    pub fn endpoint_display(&self) -> String {
        #[cfg(windows)]
        {
            self.pipe_name().unwrap_or_else(|error| {
                format!(
                    "{} (cannot read this user's SID: {error})",
                    pipe_name_for("<user>", &self.runtime_dir)
                )
            })
        }
        #[cfg(not(windows))]
        {
            self.socket().display().to_string()
        }
    }

    /// Held by the running agent for its whole life: one agent per user.
    pub fn instance_lock(&self) -> PathBuf {
        self.runtime_dir.join("agent.lock")
    }

    /// Held by a client while it starts an agent, so two clients don't start two.
    pub fn start_lock(&self) -> PathBuf {
        self.runtime_dir.join("agent-start.lock")
    }

    /// The tracked windows.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("windows.json")
    }

    /// The agent's log.
    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join("agent.log")
    }
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "jit")
}

fn default_state_dir() -> Option<PathBuf> {
    let dirs = project_dirs()?;
    Some(
        dirs.state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .to_path_buf(),
    )
}

fn default_runtime_dir() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        // The per-user, per-boot temporary directory (`/var/folders/…/T/`), mode 0700.
        return Some(std::env::temp_dir().join("jit"));
    }
    project_dirs()?.runtime_dir().map(Path::to_path_buf)
}

/// The pipe name of `user` (a SID as text) for `runtime_dir`.
#[cfg(any(windows, test))]
fn pipe_name_for(user: &str, runtime_dir: &Path) -> String {
    format!(
        r"\\.\pipe\jit-agent-{user}-{:016x}",
        fnv1a(runtime_dir.to_string_lossy().as_bytes())
    )
}

/// FNV-1a, 64-bit: a stable, dependency-free hash for the pipe name.
#[cfg(any(windows, test))]
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_files_live_in_their_dirs() {
        let paths = AgentPaths::resolve(Some("/run/x".into()), Some("/state/y".into()));
        let Ok(paths) = paths else {
            panic!("explicit directories always resolve");
        };
        assert_eq!(paths.socket(), Path::new("/run/x/agent.sock"));
        assert_eq!(paths.instance_lock(), Path::new("/run/x/agent.lock"));
        assert_eq!(paths.state_file(), Path::new("/state/y/windows.json"));
        assert_eq!(paths.log_file(), Path::new("/state/y/agent.log"));
    }

    #[test]
    fn pipe_names_differ_per_user_and_runtime_dir() {
        let first = pipe_name_for("S-1-5-21-1-2-3-1001", Path::new("/a"));
        let second = pipe_name_for("S-1-5-21-1-2-3-1001", Path::new("/b"));
        let other_user = pipe_name_for("S-1-5-21-1-2-3-1002", Path::new("/a"));
        assert_ne!(first, second);
        assert_ne!(first, other_user);
        assert!(
            first.starts_with(r"\\.\pipe\jit-agent-S-1-5-21-1-2-3-1001-"),
            "{first}"
        );
    }

    #[cfg(windows)]
    #[test]
    fn the_pipe_name_carries_this_users_sid() {
        let paths = AgentPaths::new(r"C:\a", r"C:\s");
        let name = paths.pipe_name().expect("the SID is readable");
        assert!(name.starts_with(r"\\.\pipe\jit-agent-S-1-"), "{name}");
        assert_eq!(paths.endpoint_display(), name);
    }
}
