//! The background agent: one process per user that remembers every access window, warns
//! before and when each ends, extends on request and keeps tokens warm.
//!
//! A JIT window ends silently (the NSG rule goes, the next connection hangs), and the
//! `jit` process that opened it has long exited by then; so something must outlive it.
//! This module holds both sides of that something, like a small daemon crate:
//!
//! - [`protocol`]: the JSON-lines messages, versioned, with a frozen handshake.
//! - [`server`]: the agent itself ([`Agent`]): private socket, instance lock, store,
//!   scheduler, refresher, notifications.
//! - [`client`]: what the CLI uses ([`AgentClient`], [`ensure_running`]).
//! - [`paths`], [`store`], [`schedule`], [`notifier`], [`backend`], [`autostart`]: the
//!   pieces, each testable alone.
//! - [`tray`]: the tray icon shown while windows are open, a presentation of the
//!   agent's windows that acts through [`DesktopRequest`]s.
//!
//! The agent reaches Azure only through the [`AccessBackend`] trait, so its lifecycle is
//! tested without Azure; the real backend, [`AzureBackend`] (on `crate::azure`: policy
//! request history for refreshes, `initiate` for extensions, the ARM client's token
//! cache for warm tokens), is tested end to end against the emulator.

pub mod autostart;
pub mod azure_backend;
pub mod backend;
pub mod client;
mod desktop_notification;
pub mod notifier;
pub mod paths;
pub mod protocol;
pub mod schedule;
pub mod server;
pub mod store;
mod transport;
pub mod tray;
#[cfg(windows)]
mod windows_pipe;

pub use azure_backend::AzureBackend;
pub use backend::{AccessBackend, BackendError, Granted, OfflineBackend, Refreshed, WindowUpdate};
pub use client::{AgentClient, ClientError, StartError, StartOptions, Started, ensure_running};
pub use notifier::{
    DesktopNotifier, Notification, NotificationAction, NotificationKind, Notifier,
    RecordingNotifier,
};
pub use paths::AgentPaths;
pub use protocol::{AccessWindow, ExtendLength, PortStatus, WindowPort};
pub use server::{Agent, AgentConfig, DesktopRequest, ServerError};
