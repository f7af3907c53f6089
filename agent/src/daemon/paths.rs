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
//! On Windows the endpoint is a named pipe whose name is derived from the runtime dir,
//! which is per user, so two users never share a pipe name.

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

    /// The named pipe the agent listens on (Windows), unique per runtime dir.
    pub fn pipe_name(&self) -> String {
        format!(
            r"\\.\pipe\jit-agent-{:016x}",
            fnv1a(self.runtime_dir.to_string_lossy().as_bytes())
        )
    }

    /// The endpoint clients connect to, as shown to users.
    pub fn endpoint_display(&self) -> String {
        if cfg!(windows) {
            self.pipe_name()
        } else {
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

/// FNV-1a, 64-bit: a stable, dependency-free hash for the pipe name.
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
    fn pipe_names_differ_per_runtime_dir() {
        let first = AgentPaths::new("/a", "/s").pipe_name();
        let second = AgentPaths::new("/b", "/s").pipe_name();
        assert_ne!(first, second);
        assert!(first.starts_with(r"\\.\pipe\jit-agent-"));
        assert_eq!(first, AgentPaths::new("/a", "/other").pipe_name());
    }
}
