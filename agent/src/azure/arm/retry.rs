//! When to repeat an ARM call, and how long to wait first.
//!
//! azure_core's own retry policy re-sends any request after any I/O error and keeps
//! going for up to a minute with eight retries. For `jit` that is wrong twice: a person
//! is waiting at a terminal, and `initiate` is a POST that must not be applied twice
//! without knowing. This policy replaces it (azure_core's is set to "none").
//!
//! The rules, as pure functions ([`decide`], [`retry_after`], [`backoff_delay`]) so they
//! are tested without a network:
//!
//! - **429**, and **503 with a `Retry-After`**: ARM throttled the call *before* it reached
//!   the resource provider, so it was not processed; every method is retried, after
//!   exactly the time the server asked for (`x-ms-retry-after-ms`, `retry-after-ms`, then
//!   `Retry-After` in seconds or as an HTTP date). Without such a header: exponential
//!   backoff.
//! - **408**: the server gave up *receiving* the request; not processed; retried.
//! - **500, 502, 503 (without `Retry-After`), 504**: the provider may have acted on it.
//!   Retried with backoff for idempotent methods (GET, PUT, DELETE, and POSTs the caller
//!   marks idempotent such as Resource Graph queries); **not** retried for other POSTs.
//! - **Connection failed** (DNS, refused, TLS handshake: nothing was sent): retried.
//! - **Sent, no response** (reset, read timeout): ambiguous; retried only when idempotent.
//! - **Bodies built from an earlier read** ([`Idempotency::RebuiltByCaller`], JIT policy
//!   PUTs and DELETEs): never repeated here, whatever the failure. Resending the same body
//!   after a wait would write a stale copy of the policy over whatever another admin
//!   changed meanwhile; the caller reads the policy again and rebuilds the request
//!   instead (`access::enable`), with the same budget ([`RetryOptions`]).
//! - Everything is bounded: at most [`RetryOptions::max_retries`] retries and at most
//!   [`RetryOptions::max_total_wait`] of waiting in total. A wait the budget cannot cover
//!   is not started: the last response is returned at once (a 429 then becomes
//!   `ArmError::Throttled` with the server's wait, so the person knows how long).
//!
//! Before each wait the policy logs a `tracing` event and calls the
//! [`RetryObserver`], so the CLI can say "Azure is throttling; retrying in 3 s".

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::headers::Headers;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request};

/// Whether repeating a request is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating it has the same effect as sending it once (GET, PUT, DELETE, read-only
    /// POSTs).
    Idempotent,
    /// Repeating it may apply it twice (most POSTs, e.g. JIT `initiate`).
    NonIdempotent,
    /// The body was built from an earlier read of the resource (a JIT policy merged and
    /// written back whole): the pipeline never repeats it, because the same bytes sent
    /// again later could undo a change made in between. The caller re-reads, rebuilds
    /// and sends again (as `access::enable` does).
    RebuiltByCaller,
}

impl Idempotency {
    /// The HTTP default: POST and PATCH are not idempotent, everything else is.
    pub fn of_method(method: Method) -> Self {
        match method {
            Method::Post | Method::Patch => Idempotency::NonIdempotent,
            _ => Idempotency::Idempotent,
        }
    }
}

/// Limits of the retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryOptions {
    /// Most retries after the first attempt.
    pub max_retries: u32,
    /// Most time spent waiting between attempts, in total (default 60 s).
    pub max_total_wait: Duration,
    /// First backoff delay (doubled each retry).
    pub initial_delay: Duration,
    /// Longest single backoff delay (a server's `Retry-After` may be longer).
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_retries: 6,
            max_total_wait: Duration::from_secs(60),
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryOptions {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }
}

/// What one attempt produced, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// An HTTP response arrived.
    Response {
        /// Its status.
        status: u16,
        /// The wait the server asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The connection could not be made; nothing was sent.
    NotSent,
    /// The request may have been sent, but no (complete) response arrived.
    NoResponse,
}

/// Why a request is being repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// 429, or 503 with `Retry-After`.
    Throttled {
        /// The status.
        status: u16,
    },
    /// 408 or a retryable 5xx.
    ServerError {
        /// The status.
        status: u16,
    },
    /// The connection could not be made.
    ConnectFailed,
    /// The connection broke before a response arrived.
    ConnectionLost,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Throttled { .. } => formatter.write_str("Azure is throttling requests"),
            RetryReason::ServerError { status } => {
                write!(formatter, "Azure answered HTTP {status}")
            }
            RetryReason::ConnectFailed => formatter.write_str("cannot connect to Azure"),
            RetryReason::ConnectionLost => formatter.write_str("the connection to Azure dropped"),
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Hand the outcome to the caller.
    Stop,
    /// Wait `delay`, then send again.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// Why.
        reason: RetryReason,
    },
}

/// Decides whether to retry after `outcome`.
///
/// `retries_so_far` counts completed retries (0 after the first attempt), `waited` the
/// time already spent waiting, `jitter` a factor in `[0, 1)` that spreads backoff delays
/// (a server-given wait is used exactly).
pub fn decide(
    options: &RetryOptions,
    idempotency: Idempotency,
    outcome: AttemptOutcome,
    retries_so_far: u32,
    waited: Duration,
    jitter: f64,
) -> RetryDecision {
    if idempotency == Idempotency::RebuiltByCaller {
        return RetryDecision::Stop;
    }
    let idempotent = idempotency == Idempotency::Idempotent;
    let (reason, server_delay) = match outcome {
        AttemptOutcome::Response {
            status,
            retry_after,
        } => match status {
            429 => (RetryReason::Throttled { status }, retry_after),
            503 if retry_after.is_some() => (RetryReason::Throttled { status }, retry_after),
            408 => (RetryReason::ServerError { status }, None),
            500 | 502 | 503 | 504 if idempotent => (RetryReason::ServerError { status }, None),
            _ => return RetryDecision::Stop,
        },
        AttemptOutcome::NotSent => (RetryReason::ConnectFailed, None),
        AttemptOutcome::NoResponse if idempotent => (RetryReason::ConnectionLost, None),
        AttemptOutcome::NoResponse => return RetryDecision::Stop,
    };
    if retries_so_far >= options.max_retries {
        return RetryDecision::Stop;
    }
    let delay = server_delay.unwrap_or_else(|| backoff_delay(options, retries_so_far, jitter));
    if waited.saturating_add(delay) > options.max_total_wait {
        return RetryDecision::Stop;
    }
    RetryDecision::Retry { delay, reason }
}

/// Exponential backoff: `initial_delay * 2^retries`, capped at `max_delay`, then scaled
/// by `0.8 + 0.4 * jitter` (±20 %) so that parallel calls do not retry in lockstep.
pub fn backoff_delay(options: &RetryOptions, retries_so_far: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(retries_so_far.min(16));
    let base = options
        .initial_delay
        .saturating_mul(factor)
        .min(options.max_delay);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(0.8 + 0.4 * jitter)
}

/// The wait a 429/503 response asks for: `x-ms-retry-after-ms`, `retry-after-ms` (both
/// milliseconds), then `Retry-After` (seconds, or an HTTP date relative to `now`).
/// `header` looks a header up by lower-case name.
pub fn retry_after<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    now: jiff::Timestamp,
) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(millis) = header(name).and_then(|value| value.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(millis));
        }
    }
    let value = header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let date = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = date.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The wait the response headers ask for (see [`retry_after`]).
pub(crate) fn retry_after_from_headers(headers: &Headers) -> Option<Duration> {
    retry_after(
        |name| {
            headers.get_optional_str(&azure_core::http::headers::HeaderName::from(
                name.to_owned(),
            ))
        },
        jiff::Timestamp::now(),
    )
}

/// `true` when a connection failed because the server's certificate was not trusted
/// (unknown issuer, wrong name, expired): the TLS stack reports these in the error chain.
pub(crate) fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(candidate) = current {
        if candidate
            .to_string()
            .to_ascii_lowercase()
            .contains("certificate")
        {
            return true;
        }
        current = candidate.source();
    }
    false
}

/// Told before each wait, so a front end can show progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryEvent {
    /// Why the call is repeated.
    pub reason: RetryReason,
    /// Which retry this will be (1 for the first).
    pub retry: u32,
    /// How long the policy waits before it.
    pub delay: Duration,
    /// The HTTP method.
    pub method: String,
    /// The URL path (no query string).
    pub path: String,
}

/// Receives a [`RetryEvent`] before each wait.
pub type RetryObserver = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Marks a request's idempotency in the pipeline context (absent: decided by method).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdempotencyMark(pub Idempotency);

/// The pipeline policy applying [`decide`].
pub(crate) struct RetryPolicy {
    options: RetryOptions,
    observer: Option<RetryObserver>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RetryPolicy")
            .field("options", &self.options)
            .field("observer", &self.observer.as_ref().map(|_| "<callback>"))
            .finish()
    }
}

impl RetryPolicy {
    pub(crate) fn new(options: RetryOptions, observer: Option<RetryObserver>) -> Self {
        Self { options, observer }
    }
}

#[async_trait::async_trait]
impl Policy for RetryPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let idempotency = ctx
            .value::<IdempotencyMark>()
            .map(|mark| mark.0)
            .unwrap_or_else(|| Idempotency::of_method(request.method()));
        let mut retries = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            if retries > 0 {
                request.body_mut().reset().await?;
            }
            let result = next[0].send(ctx, request, &next[1..]).await;
            let outcome = match &result {
                Ok(response) => {
                    let status = u16::from(response.status());
                    AttemptOutcome::Response {
                        status,
                        retry_after: matches!(status, 429 | 503)
                            .then(|| retry_after_from_headers(response.headers()))
                            .flatten(),
                    }
                }
                Err(error) => match error.kind() {
                    // A certificate the trust store rejects fails the same way every time.
                    ErrorKind::Connection if is_certificate_error(error) => return result,
                    ErrorKind::Connection => AttemptOutcome::NotSent,
                    ErrorKind::Io => AttemptOutcome::NoResponse,
                    _ => return result,
                },
            };
            let jitter = rand::random::<f64>();
            match decide(&self.options, idempotency, outcome, retries, waited, jitter) {
                RetryDecision::Stop => return result,
                RetryDecision::Retry { delay, reason } => {
                    retries += 1;
                    waited += delay;
                    let event = RetryEvent {
                        reason,
                        retry: retries,
                        delay,
                        method: request.method().to_string(),
                        path: request.url().path().to_owned(),
                    };
                    tracing::info!(
                        reason = %event.reason,
                        retry = event.retry,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        method = %event.method,
                        path = %event.path,
                        "retrying an Azure request"
                    );
                    if let Some(observer) = &self.observer {
                        observer(&event);
                    }
                    drop(result);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
