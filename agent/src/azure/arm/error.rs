//! ARM failures as typed errors a person can act on.
//!
//! ARM reports errors as a `CloudError` body (`{"error":{"code","message",…}}`) plus an
//! HTTP status. `jit` turns that into [`ArmError`]: the CLI branches on
//! [`ArmError::kind`] (stable names, mapped to exit codes) and prints
//! [`ArmError::hint`]. A 403 `AuthorizationFailed` names the missing action and scope,
//! parsed from ARM's message, because "access denied" alone sends people to the wrong
//! role assignment.

use std::fmt;
use std::time::Duration;

use crate::azure::credential::CredentialError;
use crate::azure::models::CloudError;

/// Where the RBAC documentation lives (the custom roles that grant what `jit` needs).
pub const RBAC_DOCS_URL: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/rbac.md");

/// An ARM call failed.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// 401 even after one token refresh.
    #[error("Azure rejected the sign-in token: {message}")]
    Unauthorized {
        /// ARM's error code (`InvalidAuthenticationToken`, `ExpiredAuthenticationToken`, …).
        code: Option<String>,
        /// ARM's message.
        message: String,
    },
    /// 403: the signed-in identity lacks a permission.
    #[error("{}", forbidden_summary(action.as_deref(), scope.as_deref(), message))]
    Forbidden {
        /// The missing ARM action, when ARM named it.
        action: Option<String>,
        /// The scope the action was checked on, when ARM named it.
        scope: Option<String>,
        /// ARM's error code (`AuthorizationFailed`, `LinkedAuthorizationFailed`, …).
        code: String,
        /// ARM's message.
        message: String,
    },
    /// 404: the resource, resource group or subscription does not exist (or is invisible).
    #[error("not found: {message}")]
    NotFound {
        /// ARM's error code (`ResourceNotFound`, `ResourceGroupNotFound`, …).
        code: String,
        /// ARM's message, which names what was not found.
        message: String,
    },
    /// 400 (or another 4xx without a variant of its own): the request was refused.
    #[error("Azure refused the request ({code}): {message}")]
    BadRequest {
        /// ARM's error code.
        code: String,
        /// ARM's message.
        message: String,
    },
    /// 409: a concurrent change or a conflicting state.
    #[error("Azure reported a conflict ({code}): {message}")]
    Conflict {
        /// ARM's error code.
        code: String,
        /// ARM's message.
        message: String,
    },
    /// 429 after the retry budget ran out.
    #[error("Azure is throttling requests{}", retry_after_text(*retry_after))]
    Throttled {
        /// How long ARM asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// ARM's message.
        message: String,
    },
    /// 5xx or 408 after retries (or at once for a call that must not be repeated).
    #[error("Azure failed with HTTP {status}{}: {message}", code_text(code.as_deref()))]
    Server {
        /// The HTTP status.
        status: u16,
        /// ARM's error code, if the body had one.
        code: Option<String>,
        /// ARM's message, or a summary of the body.
        message: String,
        /// `true` when the call was not repeated because repeating it could apply it twice.
        not_retried: bool,
        /// The wait the server asked for (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// The network failed (connect, TLS, reset, timeout).
    #[error("cannot reach Azure: {detail}")]
    Transport {
        /// What failed.
        detail: String,
        /// `true` when the request may have reached Azure (so it was not repeated).
        ambiguous: bool,
    },
    /// A response body did not have the expected shape.
    #[error("unexpected response from Azure ({what}): {source}")]
    Decode {
        /// What was being read.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A response broke the protocol (a paging loop, a link to another host, …).
    #[error("unexpected response from Azure: {detail}")]
    InvalidResponse {
        /// What was wrong.
        detail: String,
    },
    /// The caller asked for something that cannot be sent (a malformed path or id).
    #[error("invalid request: {detail}")]
    InvalidRequest {
        /// What was wrong.
        detail: String,
    },
    /// A long-running operation ended in `Failed` or `Canceled`.
    #[error("the Azure operation {status}{}: {message}", code_text(code.as_deref()))]
    OperationFailed {
        /// `Failed` or `Canceled`.
        status: String,
        /// The operation's error code.
        code: Option<String>,
        /// The operation's error message.
        message: String,
    },
    /// No token could be obtained.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// Stable names for [`ArmError`] variants (the CLI maps them to exit codes; JSON output
/// carries them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmErrorKind {
    /// See [`ArmError::Unauthorized`].
    Unauthorized,
    /// See [`ArmError::Forbidden`].
    Forbidden,
    /// See [`ArmError::NotFound`].
    NotFound,
    /// See [`ArmError::BadRequest`].
    BadRequest,
    /// See [`ArmError::Conflict`].
    Conflict,
    /// See [`ArmError::Throttled`].
    Throttled,
    /// See [`ArmError::Server`].
    Server,
    /// See [`ArmError::Transport`].
    Transport,
    /// See [`ArmError::Decode`] and [`ArmError::InvalidResponse`].
    InvalidResponse,
    /// See [`ArmError::InvalidRequest`].
    InvalidRequest,
    /// See [`ArmError::OperationFailed`].
    OperationFailed,
    /// See [`ArmError::Credential`].
    Credential,
}

impl ArmErrorKind {
    /// The stable snake_case name (`forbidden`, `not_found`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ArmErrorKind::Unauthorized => "unauthorized",
            ArmErrorKind::Forbidden => "forbidden",
            ArmErrorKind::NotFound => "not_found",
            ArmErrorKind::BadRequest => "bad_request",
            ArmErrorKind::Conflict => "conflict",
            ArmErrorKind::Throttled => "throttled",
            ArmErrorKind::Server => "server",
            ArmErrorKind::Transport => "transport",
            ArmErrorKind::InvalidResponse => "invalid_response",
            ArmErrorKind::InvalidRequest => "invalid_request",
            ArmErrorKind::OperationFailed => "operation_failed",
            ArmErrorKind::Credential => "credential",
        }
    }
}

impl fmt::Display for ArmErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl ArmError {
    /// The stable kind of this error.
    pub fn kind(&self) -> ArmErrorKind {
        match self {
            ArmError::Unauthorized { .. } => ArmErrorKind::Unauthorized,
            ArmError::Forbidden { .. } => ArmErrorKind::Forbidden,
            ArmError::NotFound { .. } => ArmErrorKind::NotFound,
            ArmError::BadRequest { .. } => ArmErrorKind::BadRequest,
            ArmError::Conflict { .. } => ArmErrorKind::Conflict,
            ArmError::Throttled { .. } => ArmErrorKind::Throttled,
            ArmError::Server { .. } => ArmErrorKind::Server,
            ArmError::Transport { .. } => ArmErrorKind::Transport,
            ArmError::Decode { .. } | ArmError::InvalidResponse { .. } => {
                ArmErrorKind::InvalidResponse
            }
            ArmError::InvalidRequest { .. } => ArmErrorKind::InvalidRequest,
            ArmError::OperationFailed { .. } => ArmErrorKind::OperationFailed,
            ArmError::Credential(_) => ArmErrorKind::Credential,
        }
    }

    /// `true` for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ArmError::NotFound { .. })
    }

    /// The ARM error code, when the response had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Unauthorized { code, .. }
            | ArmError::Server { code, .. }
            | ArmError::OperationFailed { code, .. } => code.as_deref(),
            ArmError::Forbidden { code, .. }
            | ArmError::NotFound { code, .. }
            | ArmError::BadRequest { code, .. }
            | ArmError::Conflict { code, .. } => Some(code),
            _ => None,
        }
    }

    /// One line telling the person what to do about it.
    pub fn hint(&self) -> String {
        match self {
            ArmError::Unauthorized { .. } => {
                "sign in again (`az login`), and check the tenant (--tenant) owns the subscription".to_owned()
            }
            ArmError::Forbidden {
                action: Some(action),
                scope,
                ..
            } => format!(
                "ask an administrator to grant '{action}'{} (the roles `jit` needs are in {RBAC_DOCS_URL})",
                scope
                    .as_deref()
                    .map(|scope| format!(" on {scope}"))
                    .unwrap_or_default()
            ),
            ArmError::Forbidden { .. } => {
                format!("ask an administrator for the permissions listed in {RBAC_DOCS_URL}")
            }
            ArmError::NotFound { .. } => {
                "check the name, resource group and subscription (`jit list` shows what you can see)".to_owned()
            }
            ArmError::BadRequest { .. } => {
                "check the values given; run with -v (or JIT_LOG=jit_agent=debug) to see the request".to_owned()
            }
            ArmError::Conflict { .. } => {
                "another change to the same resource is in progress; try again in a moment".to_owned()
            }
            ArmError::Throttled {
                retry_after: Some(wait),
                ..
            } => format!(
                "Azure asked to wait {}; try again then",
                humanize(*wait)
            ),
            ArmError::Throttled { .. } => "wait a minute and try again".to_owned(),
            ArmError::Server {
                not_retried: true, ..
            } => "the request may or may not have been applied: check the current state (`jit show`) before trying again".to_owned(),
            ArmError::Server { .. } => {
                "Azure is having trouble; try again later (https://status.azure.com)".to_owned()
            }
            ArmError::Transport {
                ambiguous: true, ..
            } => "the connection dropped after the request was sent, so it may have been applied: check the current state (`jit show`) before trying again".to_owned(),
            ArmError::Transport { detail, .. }
                if detail.to_ascii_lowercase().contains("certificate") =>
            {
                "the server's certificate is not trusted: behind a TLS-inspecting proxy, set JIT_CA_FILE to its root CA".to_owned()
            }
            ArmError::Transport { .. } => {
                "check the network, the proxy (HTTPS_PROXY) and JIT_CA_FILE if a proxy inspects TLS".to_owned()
            }
            ArmError::Decode { .. } | ArmError::InvalidResponse { .. } => {
                "this looks like a bug or an API change; please report it with the output of `jit -v`".to_owned()
            }
            ArmError::InvalidRequest { .. } => "check the resource id or name given".to_owned(),
            ArmError::OperationFailed { .. } => {
                "see the operation's message; the Azure portal's activity log has details".to_owned()
            }
            ArmError::Credential(error) => error.hint(),
        }
    }

    /// Builds the error for a non-success HTTP response from its status and body.
    pub fn from_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Self {
        let parsed = CloudError::parse(body);
        let code = parsed
            .as_ref()
            .and_then(|error| error.code().map(str::to_owned));
        let message = parsed
            .as_ref()
            .map(CloudError::full_message)
            .filter(|message| !message.is_empty())
            .unwrap_or_else(|| body_summary(status, body));
        let code_or = |fallback: &str| code.clone().unwrap_or_else(|| fallback.to_owned());
        match status {
            401 => ArmError::Unauthorized { code, message },
            403 => {
                let (action, scope) = parse_authorization_failure(&message);
                ArmError::Forbidden {
                    action,
                    scope,
                    code: code_or("Forbidden"),
                    message,
                }
            }
            404 => ArmError::NotFound {
                code: code_or("NotFound"),
                message,
            },
            409 => ArmError::Conflict {
                code: code_or("Conflict"),
                message,
            },
            429 => ArmError::Throttled {
                retry_after,
                message,
            },
            // 408: the server gave up receiving the request; as transient as a 5xx.
            408 | 500..=599 => ArmError::Server {
                status,
                code,
                message,
                not_retried: false,
                retry_after,
            },
            _ => ArmError::BadRequest {
                code: code_or(&format!("HTTP{status}")),
                message,
            },
        }
    }
}

/// Extracts the missing action and its scope from an `AuthorizationFailed` or
/// `LinkedAuthorizationFailed` message. For a linked failure the *linked* action (the
/// one that is missing) is the last one named.
pub fn parse_authorization_failure(message: &str) -> (Option<String>, Option<String>) {
    let actions = quoted_after(message, &["action '", "actions '", "action(s) '"]);
    let scopes = quoted_after(message, &["scope '", "scopes '", "scope(s) '"]);
    (actions.last().cloned(), scopes.last().cloned())
}

/// Every `'…'` value that directly follows one of `markers`, in order of appearance.
fn quoted_after(message: &str, markers: &[&str]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = Vec::new();
    for marker in markers {
        let mut rest = message;
        let mut offset = 0;
        while let Some(position) = rest.find(marker) {
            let start = position + marker.len();
            let Some(length) = rest[start..].find('\'') else {
                break;
            };
            found.push((offset + start, rest[start..start + length].to_owned()));
            offset += start + length;
            rest = &rest[start + length..];
        }
    }
    found.sort_by_key(|(position, _)| *position);
    found.into_iter().map(|(_, value)| value).collect()
}

fn forbidden_summary(action: Option<&str>, scope: Option<&str>, message: &str) -> String {
    match (action, scope) {
        (Some(action), Some(scope)) => {
            format!("access denied: missing permission '{action}' on '{scope}'")
        }
        (Some(action), None) => format!("access denied: missing permission '{action}'"),
        _ => format!("access denied: {message}"),
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| format!(" (retry after {})", humanize(wait)))
        .unwrap_or_default()
}

fn code_text(code: Option<&str>) -> String {
    code.map(|code| format!(" ({code})")).unwrap_or_default()
}

/// `3 s`, `1.5 s`, `2 min 5 s`: short enough for a one-line message.
pub fn humanize(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 10_000 && !millis.is_multiple_of(1000) {
        return format!("{:.1} s", duration.as_secs_f64());
    }
    let seconds = duration.as_secs();
    match (seconds / 60, seconds % 60) {
        (0, seconds) => format!("{seconds} s"),
        (minutes, 0) => format!("{minutes} min"),
        (minutes, seconds) => format!("{minutes} min {seconds} s"),
    }
}

/// A short description of a body that is not a CloudError.
fn body_summary(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    let mut summary: String = text.chars().take(200).collect();
    if summary.len() < text.len() {
        summary.push('…');
    }
    summary.replace(['\r', '\n'], " ")
}
