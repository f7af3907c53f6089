//! The messages between `jit` and its agent: JSON, one message per line.
//!
//! JSON lines keep the protocol readable with `socat` and easy to evolve: unknown fields
//! are ignored, and every message is tagged with `"type"`. The first exchange on every
//! connection is [`Request::Hello`] → [`Response::Welcome`], carrying
//! [`PROTOCOL_VERSION`] and the program versions; a client that finds an agent of
//! another version asks it to [`Request::Shutdown`] and starts its own. For that to work
//! across versions, `Hello`, `Welcome`, `Shutdown` and `ShuttingDown` are **frozen**:
//! their fields may grow, never change meaning.
//!
//! Times are RFC 3339 UTC timestamps and durations ISO 8601 (`PT5M`), both as `jiff`
//! writes them. `ends_at` is on **Azure's clock** (what ARM returned); the agent turns
//! it into local deadlines with the clock offset learnt from ARM's `Date` header.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use crate::access::memory::RememberedVm;
pub use crate::access::request::OpenPort;
pub use crate::access::window::{AccessWindow, ExtendLength, PortStatus, WindowPort};

/// Bumped whenever a message changes incompatibly or is added (2: `recall_vm`,
/// `remember_vm` and `open_window`), so that a client never talks to an agent that
/// lacks what it sends.
pub const PROTOCOL_VERSION: u32 = 2;

/// The longest line either side accepts; a longer one is a protocol error.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First message on every connection (frozen).
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The client program's version, e.g. `0.1.0`.
        client_version: String,
    },
    /// Track a window that was just opened.
    RegisterWindow {
        /// The window, as the request returned it.
        window: Box<AccessWindow>,
    },
    /// The windows the agent tracks, with the time left.
    ListWindows,
    /// Ask Azure for a new window on the same ports and source; the old one is superseded.
    ExtendWindow {
        /// The VM: its resource id, `resource-group/name`, or a name that is unique
        /// among the tracked windows (all case-insensitive).
        vm: String,
        /// How long the new window lasts.
        length: ExtendLength,
    },
    /// Re-read every window from Azure now, then list them.
    RefreshNow,
    /// A warm access token for `scope` (only for a client of the same user).
    GetToken {
        /// The OAuth scope, e.g. `https://management.azure.com/.default`.
        scope: String,
    },
    /// The agent's own health.
    Status,
    /// Stop the agent (frozen).
    Shutdown,
    /// What the agent remembers about the VM named `vm` (see `access::memory`).
    RecallVm {
        /// The VM as the person typed it (name, `resource-group/name` or id).
        vm: String,
        /// The subscriptions the search is narrowed to (empty: every visible one).
        #[serde(default)]
        subscriptions: Vec<String>,
    },
    /// Remember a VM after access to it was granted.
    RememberVm {
        /// What to remember.
        vm: Box<RememberedVm>,
    },
    /// Open access to a VM, or use a window the agent opened that still answers: the
    /// agent runs the access flow itself (it never asks a question), and every client
    /// that asks for the same VM, port and source while it runs shares that one request
    /// (single flight).
    OpenWindow {
        /// What to open.
        ask: Box<OpenAsk>,
    },
}

/// What [`Request::OpenWindow`] asks for, resolved by the client as it would resolve it
/// for itself (flags, environment, config file), so the agent opens what the client
/// would have opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAsk {
    /// The VM as typed (name, `resource-group/name` or id).
    pub vm: String,
    /// The port; `None` for the VM's SSH port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The source (`any`, an address or a range); `None` lets the VM's preferences, then
    /// the caller's public address, decide.
    #[serde(default)]
    pub source: Option<String>,
    /// How long; `None` for the policy's maximum.
    #[serde(default)]
    pub duration: Option<SignedDuration>,
    /// Why, recorded in the request.
    #[serde(default)]
    pub justification: Option<String>,
    /// How long to wait for the port to answer.
    pub timeout: SignedDuration,
    /// An open window is used only with at least this much time left.
    pub reuse_margin: SignedDuration,
    /// Start a stopped VM (nobody is asked).
    #[serde(default)]
    pub start: bool,
    /// Enable JIT for the VM if needed (nobody is asked).
    #[serde(default)]
    pub enable: bool,
    /// What enabling writes: allowed sources.
    #[serde(default)]
    pub enable_allowed_sources: Vec<String>,
    /// What enabling writes: the longest request.
    #[serde(default)]
    pub enable_max_duration: Option<SignedDuration>,
    /// Subscriptions to search (ids or names; empty: every visible one).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// "What is my IP" services.
    #[serde(default)]
    pub my_ip_urls: Vec<String>,
    /// Per-VM preferences (port, source), keyed by resource id, `group/name` or name.
    #[serde(default)]
    pub preferences: BTreeMap<String, OpenPreference>,
}

/// A VM's configured port and source, for [`OpenAsk::preferences`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPreference {
    /// The port to use.
    #[serde(default)]
    pub port: Option<u16>,
    /// The source to ask for.
    #[serde(default)]
    pub source: Option<String>,
}

/// The answer to [`Request::OpenWindow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The window, as the agent now tracks it.
    pub window: WindowView,
    /// The ports that answer, with where to connect.
    pub ports: Vec<OpenPort>,
    /// This client joined a request another client's ask had started.
    #[serde(default)]
    pub joined: bool,
    /// No request was made: a window the agent opened earlier still answers.
    #[serde(default)]
    pub reused: bool,
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`] (frozen).
    Welcome(Welcome),
    /// Answer to [`Request::RegisterWindow`] and [`Request::ExtendWindow`].
    Window {
        /// The window as the agent now tracks it.
        window: Box<WindowView>,
    },
    /// Answer to [`Request::ListWindows`] and [`Request::RefreshNow`].
    Windows(WindowList),
    /// Answer to [`Request::GetToken`].
    Token {
        /// The token; it never touches disk or a log.
        token: AccessToken,
    },
    /// Answer to [`Request::Status`].
    Status {
        /// The agent's health.
        status: Box<AgentStatus>,
    },
    /// Answer to [`Request::Shutdown`] (frozen): the agent stops after sending it.
    ShuttingDown,
    /// Answer to [`Request::RecallVm`].
    Recalled {
        /// What the agent remembers, if anything.
        vm: Option<Box<RememberedVm>>,
    },
    /// Answer to [`Request::RememberVm`].
    Remembered,
    /// Answer to [`Request::OpenWindow`].
    Opened(Box<Opened>),
    /// The request failed.
    Error {
        /// Why.
        error: ProtocolError,
    },
}

/// The agent's side of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The agent's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent program's version.
    pub agent_version: String,
    /// The agent's process id.
    pub pid: u32,
    /// Which configuration the agent runs with (e.g. the ARM endpoint or a profile
    /// name); a client with a different one replaces the agent.
    #[serde(default)]
    pub profile: Option<String>,
}

/// A tracked window with what the agent knows about it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowView {
    /// The window.
    pub window: AccessWindow,
    /// Time left on Azure's clock when the answer was built (zero once ended).
    pub time_left: SignedDuration,
    /// Whether the "ends soon" notification was sent.
    pub ends_soon_notified: bool,
}

/// The tracked windows and the agent's idea of Azure's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowList {
    /// Azure's time when the list was built (local clock plus the latest offset).
    pub azure_now: Timestamp,
    /// The windows, soonest end first.
    pub windows: Vec<WindowView>,
}

/// A bearer token handed to a client of the same user. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The token itself.
    pub secret: String,
    /// When it expires (token issuer's clock).
    pub expires_on: Timestamp,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// The agent's health, for `jit agent status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent program's version.
    pub agent_version: String,
    /// The agent's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent's process id.
    pub pid: u32,
    /// The configuration the agent runs with.
    pub profile: Option<String>,
    /// When the agent started (local clock).
    pub started_at: Timestamp,
    /// Where the agent listens (socket path or pipe name).
    pub endpoint: String,
    /// The state file.
    pub state_file: PathBuf,
    /// How many windows are tracked.
    pub open_windows: usize,
    /// Azure's clock minus the local clock, from the latest ARM `Date` header.
    pub server_clock_offset: SignedDuration,
    /// How long before the end the "ends soon" notification comes.
    pub notify_before: SignedDuration,
    /// How often windows are re-read from Azure while any is open.
    pub refresh_interval: SignedDuration,
    /// Which Azure backend the agent uses.
    pub backend: String,
    /// When windows were last re-read from Azure successfully.
    pub last_refresh: Option<Timestamp>,
    /// Why the last re-read failed, if it did.
    pub last_refresh_error: Option<String>,
    /// A problem with the state file (e.g. a corrupt file set aside), if any.
    pub store_problem: Option<String>,
    /// Why desktop notifications fall back to the log, if they do.
    pub notifier_problem: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    /// What kind of failure, for callers to branch on.
    pub kind: ErrorKind,
    /// A sentence for the user.
    pub message: String,
}

impl ProtocolError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Kinds of [`ProtocolError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Client and agent speak different protocol versions; only `Shutdown` is accepted.
    VersionMismatch,
    /// The first message was not `Hello`, or a request could not be parsed.
    InvalidRequest,
    /// No tracked window matches.
    NotFound,
    /// Several tracked windows match a name; use the id or `resource-group/name`.
    Ambiguous,
    /// The connecting process belongs to another user.
    PermissionDenied,
    /// The agent cannot reach Azure (not signed in, no backend configured).
    Unavailable,
    /// Azure refused or failed the call.
    Backend,
    /// Something went wrong inside the agent.
    Internal,
    /// A kind this version does not know.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> AccessWindow {
        AccessWindow {
            vm_id: "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01".into(),
            vm_name: "api-01".into(),
            resource_group: "rg-web".into(),
            subscription_id: "s".into(),
            policy_id: "p".into(),
            ports: vec![WindowPort {
                number: 22,
                mapped_port: None,
                status: PortStatus::Initiated,
            }],
            source_address_prefix: "198.51.100.7".into(),
            requested_at: Timestamp::UNIX_EPOCH,
            ends_at: Timestamp::UNIX_EPOCH,
            server_clock_offset_at_registration: SignedDuration::ZERO,
            justification: None,
            connect_address: None,
            requestor: None,
        }
    }

    #[test]
    fn requests_are_tagged_json_lines() {
        let hello = Request::Hello {
            protocol_version: 1,
            client_version: "0.1.0".into(),
        };
        let text = serde_json::to_string(&hello).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"type":"hello","protocol_version":1,"client_version":"0.1.0"}"#
        );
        let shutdown: Result<Request, _> = serde_json::from_str(r#"{"type":"shutdown"}"#);
        assert_eq!(shutdown.ok(), Some(Request::Shutdown));
        let extend = Request::ExtendWindow {
            vm: "api-01".into(),
            length: ExtendLength::Duration {
                duration: SignedDuration::from_hours(1),
            },
        };
        let text = serde_json::to_string(&extend).unwrap_or_default();
        assert!(
            text.contains(r#""length":{"kind":"duration","duration":"PT1H"}"#),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_and_statuses_are_tolerated() {
        let text = r#"{"number":22,"status":"Expiring","future_field":1}"#;
        let port: Result<WindowPort, _> = serde_json::from_str(text);
        assert_eq!(
            port.ok().map(|port| port.status),
            Some(PortStatus::Other("Expiring".into()))
        );
        let kind: Result<ErrorKind, _> = serde_json::from_str(r#""brand_new""#);
        assert_eq!(kind.ok(), Some(ErrorKind::Unknown));
    }

    #[test]
    fn windows_match_by_id_group_and_name() {
        let window = window();
        assert!(window.matches("API-01"));
        assert!(window.matches("rg-web/api-01"));
        assert!(window.matches(&window.vm_id.to_uppercase()));
        assert!(!window.matches("rg-data/api-01"));
        assert!(!window.matches("web-01"));
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = AccessToken {
            secret: "eyJ-secret".into(),
            expires_on: Timestamp::UNIX_EPOCH,
        };
        let printed = format!("{token:?}");
        assert!(!printed.contains("eyJ"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
