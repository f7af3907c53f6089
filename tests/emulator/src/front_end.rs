//! What the HTTPS front end serves from, and the request log it keeps: shared by the
//! request pipeline ([`crate::server`]) and the admin API ([`crate::admin`]), so neither
//! needs the other's internals.

use std::sync::Mutex;

use jiff::Timestamp;
use serde::Serialize;

use crate::az_cli::AzCli;
use crate::clock::Clock;
use crate::faults::Faults;
use crate::identity::Identity;
use crate::lock::lock;
use crate::state::SharedState;

/// How many requests the admin request log keeps.
const REQUEST_LOG_CAPACITY: usize = 10_000;

/// One request as the admin request log records it (no headers, no bodies).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// When it arrived, on the virtual clock (RFC 3339).
    pub time: Timestamp,
    /// The method.
    pub method: String,
    /// The path and query as sent.
    pub path: String,
    /// The status answered; `None` when the connection was reset instead.
    pub status: Option<u16>,
    /// Ids of the injected faults that hit this request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<u64>,
    /// Ids of the concurrent-writer hooks this request fired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<u64>,
}

impl RequestRecord {
    /// The path without its query (`?api-version=…`), as sent.
    pub fn path_without_query(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }

    /// Whether this request went to `path` (the query ignored, ARM paths compare in any
    /// case).
    pub fn is_to(&self, path: &str) -> bool {
        self.path_without_query().eq_ignore_ascii_case(path)
    }
}

/// Everything the front end serves from.
#[derive(Debug)]
pub(crate) struct FrontEnd {
    /// `https://127.0.0.1:P`, no trailing slash.
    pub(crate) base_url: String,
    pub(crate) clock: Clock,
    pub(crate) state: SharedState,
    pub(crate) identity: Identity,
    pub(crate) faults: Faults,
    pub(crate) az: AzCli,
    /// What `/ip` answers instead of the client IP, when set.
    pub(crate) my_ip_override: Mutex<Option<String>>,
    pub(crate) requests: Mutex<std::collections::VecDeque<RequestRecord>>,
    /// How long each route took to answer.
    pub(crate) timings: Mutex<crate::stats::Timings>,
}

impl FrontEnd {
    /// What `/ip` answers.
    pub(crate) fn my_ip(&self) -> String {
        lock(&self.my_ip_override)
            .clone()
            .unwrap_or_else(|| self.state.client_ip().to_string())
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        let mut requests = lock(&self.requests);
        if requests.len() >= REQUEST_LOG_CAPACITY {
            requests.pop_front();
        }
        requests.push_back(record);
    }
}

impl FrontEnd {
    /// Moves the virtual clock and brings what depends on it up to date.
    pub(crate) fn advance_clock(&self, by: jiff::SignedDuration) {
        self.clock.advance(by);
        self.after_clock_change();
    }

    /// Re-mints the fake `az` token if the new time made it stale.
    pub(crate) fn after_clock_change(&self) {
        if let Err(error) = self.az.refresh(&self.identity, self.clock.now()) {
            tracing::warn!(%error, "could not refresh the fake az token");
        }
    }
}
