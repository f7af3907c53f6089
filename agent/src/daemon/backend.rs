//! The agent's seam to Azure: re-read windows, extend one, hand out tokens.
//!
//! The agent's lifecycle (socket, store, timers, notifications) does not depend on how
//! Azure is reached, so it is generic over [`AccessBackend`]. The real implementation
//! sits on `jit_agent::azure` and speaks ARM; [`OfflineBackend`] is for an agent that
//! has no Azure configuration (it still tracks windows the CLI registers, warns before
//! and at their end, and says plainly that it cannot extend or refresh).

use std::future::Future;

use jiff::SignedDuration;

use super::protocol::{AccessToken, AccessWindow, ExtendLength, OpenAsk, OpenPort, RememberedVm};

/// What Azure says about one tracked window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowUpdate {
    /// Still as tracked.
    Unchanged {
        /// The VM's resource id.
        vm_id: String,
    },
    /// The VM's current window differs (a newer request superseded it, its end moved,
    /// a port's status changed): track this one instead.
    Changed(Box<AccessWindow>),
    /// Azure no longer holds the window open.
    Revoked {
        /// The VM's resource id.
        vm_id: String,
    },
}

/// The result of re-reading windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// One update per window asked about (missing ones count as unchanged).
    pub updates: Vec<WindowUpdate>,
    /// Azure's clock minus the local clock, from the latest ARM `Date` header.
    pub server_clock_offset: Option<SignedDuration>,
}

/// Access the backend opened for [`AccessBackend::open`].
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    /// The window to track.
    pub window: AccessWindow,
    /// The ports that answer.
    pub ports: Vec<OpenPort>,
    /// What to remember about the VM for next time.
    pub remember: Option<RememberedVm>,
}

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The agent cannot reach Azure at all (no configuration, not signed in).
    #[error("{0}")]
    Unavailable(String),
    /// Azure refused or failed the call.
    #[error("{0}")]
    Azure(String),
    /// The request cannot be made as asked (longer than the policy allows, the VM or
    /// port left the policy).
    #[error("{0}")]
    Invalid(String),
}

/// How the agent reaches Azure.
pub trait AccessBackend: Send + Sync + 'static {
    /// A short description for the agent's status (e.g. `azure (AzureCloud)`).
    fn describe(&self) -> String;

    /// Re-reads the current state of `windows` from Azure.
    fn refresh(
        &self,
        windows: &[AccessWindow],
    ) -> impl Future<Output = Result<Refreshed, BackendError>> + Send;

    /// Requests a new window for the same VM, ports and source as `window`.
    fn extend(
        &self,
        window: &AccessWindow,
        length: &ExtendLength,
    ) -> impl Future<Output = Result<AccessWindow, BackendError>> + Send;

    /// An access token for `scope`, from the signed-in credential (cached by it).
    fn token(&self, scope: &str) -> impl Future<Output = Result<AccessToken, BackendError>> + Send;

    /// Opens access as `ask` says (or finds a window that is open and answers), without
    /// asking anyone anything, starting from what was `remembered` about the VM. A
    /// backend that cannot (the offline one) says so, and the client opens access
    /// itself.
    fn open(
        &self,
        ask: &OpenAsk,
        remembered: Option<RememberedVm>,
    ) -> impl Future<Output = Result<Granted, BackendError>> + Send {
        let _ = (ask, remembered);
        std::future::ready(Err(BackendError::Unavailable(format!(
            "the agent cannot open access ({})",
            self.describe()
        ))))
    }
}

/// A backend without Azure: refreshes change nothing, extend and tokens are refused.
#[derive(Debug, Clone)]
pub struct OfflineBackend {
    reason: String,
}

impl OfflineBackend {
    /// An offline backend; `reason` says why there is no Azure (shown to clients).
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl AccessBackend for OfflineBackend {
    fn describe(&self) -> String {
        format!("offline ({})", self.reason)
    }

    async fn refresh(&self, windows: &[AccessWindow]) -> Result<Refreshed, BackendError> {
        Ok(Refreshed {
            updates: windows
                .iter()
                .map(|window| WindowUpdate::Unchanged {
                    vm_id: window.vm_id.clone(),
                })
                .collect(),
            server_clock_offset: None,
        })
    }

    async fn extend(
        &self,
        _window: &AccessWindow,
        _length: &ExtendLength,
    ) -> Result<AccessWindow, BackendError> {
        Err(BackendError::Unavailable(format!(
            "the agent cannot extend windows: {}",
            self.reason
        )))
    }

    async fn token(&self, _scope: &str) -> Result<AccessToken, BackendError> {
        Err(BackendError::Unavailable(format!(
            "the agent holds no token: {}",
            self.reason
        )))
    }
}

impl<B: AccessBackend> AccessBackend for std::sync::Arc<B> {
    fn describe(&self) -> String {
        B::describe(self)
    }

    fn refresh(
        &self,
        windows: &[AccessWindow],
    ) -> impl Future<Output = Result<Refreshed, BackendError>> + Send {
        B::refresh(self, windows)
    }

    fn extend(
        &self,
        window: &AccessWindow,
        length: &ExtendLength,
    ) -> impl Future<Output = Result<AccessWindow, BackendError>> + Send {
        B::extend(self, window, length)
    }

    fn token(&self, scope: &str) -> impl Future<Output = Result<AccessToken, BackendError>> + Send {
        B::token(self, scope)
    }

    fn open(
        &self,
        ask: &OpenAsk,
        remembered: Option<RememberedVm>,
    ) -> impl Future<Output = Result<Granted, BackendError>> + Send {
        B::open(self, ask, remembered)
    }
}
