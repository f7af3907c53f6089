//! The agent's memory across restarts: `windows.json` in the state dir.
//!
//! The file is small and rewritten whole on every change, atomically: written to a temp
//! file in the same directory, fsynced, renamed over the old one, and the directory
//! fsynced, so a crash or power cut leaves either the old or the new list, never half
//! of one. It is private to the user (0600): VM names and source addresses are nobody
//! else's business.
//!
//! A file that cannot be read back is never silently replaced: it is renamed aside as
//! `windows.json.corrupt-<timestamp>` and the problem is reported (log and agent
//! status), then the agent starts empty. Windows that ended while the agent was not
//! running are dropped on load.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::protocol::AccessWindow;

/// The file format's version, bumped on incompatible changes.
const FORMAT: u32 = 1;

/// A window plus what the agent already told the user about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedWindow {
    /// The window.
    pub window: AccessWindow,
    /// Whether "ends soon" was sent (or is not wanted, for a window shorter than the
    /// lead time, whose "opened" notification already said when it ends).
    #[serde(default)]
    pub ends_soon_notified: bool,
}

impl TrackedWindow {
    /// A window nothing was said about yet.
    pub fn new(window: AccessWindow) -> Self {
        Self {
            window,
            ends_soon_notified: false,
        }
    }
}

/// What is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredState {
    /// Azure's clock minus the local clock, as last seen.
    pub server_clock_offset: SignedDuration,
    /// The tracked windows.
    pub windows: Vec<TrackedWindow>,
}

impl Default for StoredState {
    fn default() -> Self {
        Self {
            server_clock_offset: SignedDuration::ZERO,
            windows: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct FileContent {
    format: u32,
    #[serde(flatten)]
    state: StoredState,
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    /// The state to start from (empty when there was no file or it was unreadable).
    pub state: StoredState,
    /// How many windows were dropped because they had ended.
    pub dropped_expired: usize,
    /// A file that could not be read and was moved aside, with why.
    pub set_aside: Option<SetAside>,
}

/// A state file that could not be used, moved out of the way.
#[derive(Debug)]
pub struct SetAside {
    /// Where the file is now.
    pub moved_to: PathBuf,
    /// Why it could not be used.
    pub reason: String,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or renaming failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The state could not be serialised (a bug).
    #[error("could not serialise the agent state: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// The state file.
#[derive(Debug, Clone)]
pub struct WindowStore {
    path: PathBuf,
}

impl WindowStore {
    /// A store kept in `path` (whose directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state, dropping windows that ended before `local_now` (compared on
    /// Azure's clock, with the stored offset). A file that cannot be parsed is moved
    /// aside; a file that cannot even be read is an error (nothing is lost by waiting).
    pub fn load(&self, local_now: Timestamp) -> Result<Loaded, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    state: StoredState::default(),
                    dropped_expired: 0,
                    set_aside: None,
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "could not read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut state = match parse(&bytes) {
            Ok(state) => state,
            Err(reason) => {
                let moved_to = self.set_aside(local_now)?;
                tracing::error!(
                    file = %self.path.display(),
                    moved_to = %moved_to.display(),
                    %reason,
                    "the agent's state file is unreadable; moved it aside and starting empty"
                );
                return Ok(Loaded {
                    state: StoredState::default(),
                    dropped_expired: 0,
                    set_aside: Some(SetAside { moved_to, reason }),
                });
            }
        };
        let azure_now = local_now
            .checked_add(state.server_clock_offset)
            .unwrap_or(local_now);
        let before = state.windows.len();
        state
            .windows
            .retain(|tracked| tracked.window.ends_at > azure_now);
        Ok(Loaded {
            dropped_expired: before - state.windows.len(),
            state,
            set_aside: None,
        })
    }

    /// Replaces the file with `state`, atomically.
    pub fn save(&self, state: &StoredState) -> Result<(), StoreError> {
        let content = FileContent {
            format: FORMAT,
            state: state.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&content)?;
        bytes.push(b'\n');
        let directory = self.path.parent().unwrap_or(Path::new("."));
        let file_name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "windows.json".to_owned());
        let temp_path = directory.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let io_error = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        let result = write_synced(&temp_path, &bytes)
            .map_err(io_error("could not write", &temp_path))
            .and_then(|()| {
                fs::rename(&temp_path, &self.path)
                    .map_err(io_error("could not replace", &self.path))
            });
        if result.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        result?;
        sync_directory(directory);
        Ok(())
    }

    /// Moves the current file to `<name>.corrupt-<timestamp>` next to it.
    fn set_aside(&self, local_now: Timestamp) -> Result<PathBuf, StoreError> {
        let stamp = local_now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut moved_to = self.path.with_file_name(format!(
            "{}.corrupt-{stamp}",
            self.path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        // Never overwrite an earlier corrupt file set aside in the same second.
        let mut attempt = 1;
        while moved_to.exists() {
            attempt += 1;
            moved_to.set_extension(format!("corrupt-{stamp}-{attempt}"));
        }
        fs::rename(&self.path, &moved_to).map_err(|source| StoreError::Io {
            action: "could not move aside",
            path: self.path.clone(),
            source,
        })?;
        Ok(moved_to)
    }
}

fn parse(bytes: &[u8]) -> Result<StoredState, String> {
    let content: FileContent = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if content.format != FORMAT {
        return Err(format!(
            "format {} is not the format this agent writes ({FORMAT})",
            content.format
        ));
    }
    Ok(content.state)
}

/// Creates `path` (0600 on Unix), writes `bytes` and waits until they are on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the rename durable. Best effort: not every file system or OS supports it.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Err(error) = fs::File::open(directory).and_then(|dir| dir.sync_all()) {
        tracing::debug!(directory = %directory.display(), %error, "could not fsync the state directory");
    }
    #[cfg(not(unix))]
    let _ = directory;
}
