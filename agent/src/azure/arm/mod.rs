//! The ARM client: every Azure Resource Manager call of `jit` goes through [`ArmClient`].
//!
//! It is a thin layer over azure_core's [`Pipeline`] (user agent, client request id,
//! logging with secrets redacted, our `reqwest` transport) with three policies of our
//! own: [`retry`] (tuned for a person waiting, and careful with POST), `auth` (bearer
//! token from the [`TokenCache`], one forced refresh after a 401) and the response
//! handling here:
//!
//! - non-2xx bodies become typed [`ArmError`]s with hints;
//! - every request carries a fresh `x-ms-correlation-request-id`, logged at debug level
//!   with ARM's `x-ms-request-id`, which is what Azure support asks for;
//! - every response's `Date` header is recorded, so callers can measure time against
//!   Azure's clock ([`ArmClient::server_now`]): JIT end times are Azure's, and a laptop
//!   clock that is off by minutes would otherwise miscount the time left;
//! - `nextLink` paging and `Azure-AsyncOperation` polling only follow links on the ARM
//!   endpoint's own origin, so a bearer token is never sent to another host.
//!
//! Paths are ARM paths (`/subscriptions/{id}/…`); each segment is percent-encoded as
//! needed, so resource names never change the shape of a URL.

mod auth;
mod error;
pub mod retry;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers, USER_AGENT};
use azure_core::http::policies::Policy;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request,
    RetryOptions as CoreRetryOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

pub use error::{ArmError, ArmErrorKind, RBAC_DOCS_URL, humanize, parse_authorization_failure};
pub use retry::{
    AttemptOutcome, Idempotency, RetryDecision, RetryEvent, RetryObserver, RetryOptions,
    RetryReason,
};

use crate::azure::cloud::CloudEndpoints;
use crate::azure::credential::{CredentialError, CredentialSource, TokenCache};
use crate::azure::models::{AsyncOperationStatus, OperationStatus, Page};
use crate::azure::transport::HttpTransport;
use auth::AuthPolicy;
use retry::{IdempotencyMark, RetryPolicy, retry_after_from_headers};

const CORRELATION_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-correlation-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const DATE: HeaderName = HeaderName::from_static("date");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
/// Sentinel for "no Date header seen yet".
const NO_OFFSET: i64 = i64::MIN;

/// How long-running operations (`Azure-AsyncOperation`, `Location`) are polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongRunningOptions {
    /// Wait between polls when the server does not say (`Retry-After`).
    pub default_poll_interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for LongRunningOptions {
    fn default() -> Self {
        Self {
            default_poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// Options of an [`ArmClient`].
#[derive(Clone, Default)]
pub struct ArmClientOptions {
    /// Retry limits.
    pub retry: RetryOptions,
    /// Called before each retry wait (for progress messages).
    pub retry_observer: Option<RetryObserver>,
    /// Long-running operation polling.
    pub long_running: LongRunningOptions,
}

impl fmt::Debug for ArmClientOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ArmClientOptions")
            .field("retry", &self.retry)
            .field(
                "retry_observer",
                &self.retry_observer.as_ref().map(|_| "<callback>"),
            )
            .field("long_running", &self.long_running)
            .finish()
    }
}

/// A successful ARM response.
#[derive(Clone, Debug)]
pub struct ArmResponse {
    /// HTTP status (2xx).
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
    /// The server's `Date`, if sent.
    pub server_date: Option<Timestamp>,
}

impl ArmResponse {
    /// Parses the body as JSON; `what` names it in errors.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ArmError> {
        serde_json::from_slice(&self.body).map_err(|source| ArmError::Decode {
            what: what.to_owned(),
            source,
        })
    }

    /// A response header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from(name.to_owned()))
    }
}

/// Outcome of a DELETE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The resource was deleted (200), or deletion was accepted (202).
    Deleted,
    /// There was nothing to delete (204).
    DidNotExist,
}

/// The ARM client. Cheap to clone; clones share the connection pool, the token cache and
/// the server clock.
#[derive(Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Url,
    pipeline: Pipeline,
    credential: Arc<TokenCache>,
    token_scope: String,
    long_running: LongRunningOptions,
    retry: RetryOptions,
    retry_observer: Option<RetryObserver>,
    server_offset_ms: AtomicI64,
}

impl fmt::Debug for ArmClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ArmClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("credential", &self.inner.credential)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client for the ARM endpoint of `endpoints`, authenticating with `credential`
    /// (any [`TokenCache`], for example one over tokens handed out by the agent).
    pub fn new(
        endpoints: &CloudEndpoints,
        transport: &HttpTransport,
        credential: Arc<TokenCache>,
        options: ArmClientOptions,
    ) -> Self {
        let per_try: Vec<Arc<dyn Policy>> = vec![
            Arc::new(UserAgentPolicy(HeaderValue::from(
                transport.user_agent().to_owned(),
            ))),
            Arc::new(RetryPolicy::new(
                options.retry.clone(),
                options.retry_observer.clone(),
            )),
            Arc::new(AuthPolicy::new(
                Arc::clone(&credential),
                endpoints.token_scope.clone(),
            )),
        ];
        let client_options = ClientOptions {
            transport: Some(transport.azure_transport()),
            retry: CoreRetryOptions::none(),
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            Some("jit"),
            Some(env!("CARGO_PKG_VERSION")),
            client_options,
            Vec::new(),
            per_try,
            None,
        );
        let mut endpoint = endpoints.resource_manager.clone();
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        Self {
            inner: Arc::new(Inner {
                endpoint,
                pipeline,
                credential,
                token_scope: endpoints.token_scope.clone(),
                long_running: options.long_running,
                retry: options.retry,
                retry_observer: options.retry_observer,
                server_offset_ms: AtomicI64::new(NO_OFFSET),
            }),
        }
    }

    /// The ARM base URL.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// The token cache behind this client.
    pub fn credential(&self) -> &Arc<TokenCache> {
        &self.inner.credential
    }

    /// The retry limits this client was built with. Callers that repeat a call
    /// themselves ([`Idempotency::RebuiltByCaller`]) keep to the same budget.
    pub fn retry_options(&self) -> &RetryOptions {
        &self.inner.retry
    }

    /// Tells the front end about a retry a caller makes itself, as the pipeline does
    /// before each of its own waits (progress messages; also logged).
    pub fn report_retry(&self, event: &RetryEvent) {
        tracing::info!(
            reason = %event.reason,
            retry = event.retry,
            delay_ms = u64::try_from(event.delay.as_millis()).unwrap_or(u64::MAX),
            method = %event.method,
            path = %event.path,
            "retrying an Azure request after reading the resource again"
        );
        if let Some(observer) = &self.inner.retry_observer {
            observer(event);
        }
    }

    /// The scope of the tokens this client signs its calls with (`…/.default` of the
    /// cloud's ARM audience).
    pub fn token_scope(&self) -> &str {
        &self.inner.token_scope
    }

    /// Azure's clock minus ours, from the latest `Date` header (±1 s: the header has
    /// whole seconds). `None` before the first response.
    pub fn server_time_offset(&self) -> Option<SignedDuration> {
        match self.inner.server_offset_ms.load(Ordering::Relaxed) {
            NO_OFFSET => None,
            millis => Some(SignedDuration::from_millis(millis)),
        }
    }

    /// The current time by Azure's clock (our clock until a response was seen).
    pub fn server_now(&self) -> Timestamp {
        let now = Timestamp::now();
        self.server_time_offset()
            .and_then(|offset| now.checked_add(offset).ok())
            .unwrap_or(now)
    }

    /// Builds the URL of an ARM `path` with `api-version` and extra query pairs.
    pub fn url(
        &self,
        path: &str,
        api_version: Option<&str>,
        query: &[(&str, &str)],
    ) -> Result<Url, ArmError> {
        let invalid = |detail: String| ArmError::InvalidRequest { detail };
        let Some(relative) = path.strip_prefix('/') else {
            return Err(invalid(format!("an ARM path must start with '/': {path}")));
        };
        let segments: Vec<&str> = relative.split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return Err(invalid(format!(
                "the ARM path has an empty segment: {path}"
            )));
        }
        let mut url = self.inner.endpoint.clone();
        {
            let mut url_segments = url
                .path_segments_mut()
                .map_err(|()| invalid("the ARM endpoint cannot have a path".to_owned()))?;
            url_segments.pop_if_empty();
            url_segments.extend(segments);
        }
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(version) = api_version {
                pairs.append_pair("api-version", version);
            }
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// Resolves a link from a response (`nextLink`, `Azure-AsyncOperation`, `Location`):
    /// absolute or relative to the endpoint, and only on the endpoint's own origin.
    pub fn trusted_link(&self, link: &str) -> Result<Url, ArmError> {
        let url =
            self.inner
                .endpoint
                .join(link.trim())
                .map_err(|error| ArmError::InvalidResponse {
                    detail: format!("malformed link '{link}': {error}"),
                })?;
        if url.origin() != self.inner.endpoint.origin() {
            return Err(ArmError::InvalidResponse {
                detail: format!(
                    "a link points to {}, outside the ARM endpoint {}; not following it",
                    url.origin().ascii_serialization(),
                    self.inner.endpoint.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// GETs `path` and parses the JSON body.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ArmError> {
        let url = self.url(path, Some(api_version), query)?;
        self.send(Method::Get, url, None, Idempotency::Idempotent)
            .await?
            .json(&format!("GET {path}"))
    }

    /// Like [`ArmClient::get_json`], with `None` for a 404.
    pub async fn get_json_optional<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, ArmError> {
        match self.get_json(path, api_version, query).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// PUTs `body` as JSON and parses the response (PUT is idempotent: retried).
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
    ) -> Result<T, ArmError> {
        self.put_json_with(path, api_version, body, Idempotency::Idempotent)
            .await
    }

    /// PUTs `body` as JSON and parses the response; `idempotency` says whether the
    /// pipeline may send it again ([`Idempotency::RebuiltByCaller`]: never).
    pub async fn put_json_with<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<T, ArmError> {
        let url = self.url(path, Some(api_version), &[])?;
        let body = encode(body, path)?;
        self.send(Method::Put, url, Some(body), idempotency)
            .await?
            .json(&format!("PUT {path}"))
    }

    /// POSTs `body` as JSON and parses the response. Say whether repeating the call is
    /// harmless: a non-idempotent POST is never repeated after a failure that may have
    /// reached Azure (see [`retry`]).
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<T, ArmError> {
        let url = self.url(path, Some(api_version), &[])?;
        let body = encode(body, path)?;
        self.send(Method::Post, url, Some(body), idempotency)
            .await?
            .json(&format!("POST {path}"))
    }

    /// DELETEs `path`.
    pub async fn delete(&self, path: &str, api_version: &str) -> Result<DeleteOutcome, ArmError> {
        self.delete_with(path, api_version, Idempotency::Idempotent)
            .await
    }

    /// DELETEs `path`; `idempotency` says whether the pipeline may send it again.
    pub async fn delete_with(
        &self,
        path: &str,
        api_version: &str,
        idempotency: Idempotency,
    ) -> Result<DeleteOutcome, ArmError> {
        let url = self.url(path, Some(api_version), &[])?;
        let response = self.send(Method::Delete, url, None, idempotency).await?;
        Ok(if response.status == 204 {
            DeleteOutcome::DidNotExist
        } else {
            DeleteOutcome::Deleted
        })
    }

    /// The pages of a list, following `nextLink` until it is absent.
    pub fn pages<T>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> BoxStream<'static, Result<Vec<T>, ArmError>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let first = match self.url(path, Some(api_version), query) {
            Ok(url) => url,
            Err(error) => return futures::stream::once(async { Err(error) }).boxed(),
        };
        let what = format!("list {path}");
        let state = (self.clone(), Some(first), HashSet::<String>::new(), what);
        futures::stream::try_unfold(state, |(client, next, mut seen, what)| async move {
            let Some(url) = next else {
                return Ok(None);
            };
            seen.insert(url.as_str().to_owned());
            let page: Page<T> = client
                .send(Method::Get, url, None, Idempotency::Idempotent)
                .await?
                .json(&what)?;
            let next = match page.next_link.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(link) => {
                    let url = client.trusted_link(link)?;
                    if seen.contains(url.as_str()) {
                        return Err(ArmError::InvalidResponse {
                            detail: format!("the nextLink of {what} repeats an earlier page"),
                        });
                    }
                    Some(url)
                }
            };
            Ok(Some((page.value, (client, next, seen, what))))
        })
        .boxed()
    }

    /// Every item of a list, all pages collected.
    pub async fn list_all<T>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ArmError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let mut pages = self.pages::<T>(path, api_version, query);
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            items.extend(page?);
        }
        Ok(items)
    }

    /// POSTs an action that may run long (`start` of a VM): when Azure answers 201/202
    /// it polls `Azure-AsyncOperation` (else `Location`), honouring `Retry-After`, until
    /// the operation ends. `Failed`/`Canceled` become [`ArmError::OperationFailed`].
    pub async fn post_long_running<B: Serialize + ?Sized>(
        &self,
        path: &str,
        api_version: &str,
        body: Option<&B>,
        idempotency: Idempotency,
    ) -> Result<(), ArmError> {
        let url = self.url(path, Some(api_version), &[])?;
        let body = body.map(|body| encode(body, path)).transpose()?;
        let response = self.send(Method::Post, url, body, idempotency).await?;
        if !matches!(response.status, 201 | 202) {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let mut interval = poll_interval(&response, &self.inner.long_running);
        if let Some(link) = response.header("azure-asyncoperation") {
            let url = self.trusted_link(link)?;
            loop {
                self.wait_for_poll(started, interval, path).await?;
                let poll = self
                    .send(Method::Get, url.clone(), None, Idempotency::Idempotent)
                    .await?;
                let status: AsyncOperationStatus = poll.json("operation status")?;
                match status.status.unwrap_or(OperationStatus::InProgress) {
                    OperationStatus::Succeeded => return Ok(()),
                    status @ (OperationStatus::Failed | OperationStatus::Canceled) => {
                        let error = status_error(&poll);
                        return Err(ArmError::OperationFailed {
                            status: status.to_string(),
                            code: error.as_ref().and_then(|body| body.code.clone()),
                            message: error
                                .and_then(|body| body.message)
                                .unwrap_or_else(|| "no details were given".to_owned()),
                        });
                    }
                    _ => interval = poll_interval(&poll, &self.inner.long_running),
                }
            }
        }
        if let Some(link) = response.header("location") {
            let url = self.trusted_link(link)?;
            loop {
                self.wait_for_poll(started, interval, path).await?;
                let poll = self
                    .send(Method::Get, url.clone(), None, Idempotency::Idempotent)
                    .await?;
                if poll.status != 202 {
                    return Ok(());
                }
                interval = poll_interval(&poll, &self.inner.long_running);
            }
        }
        tracing::debug!(%path, "accepted without a status link; treating the operation as started");
        Ok(())
    }

    async fn wait_for_poll(
        &self,
        started: tokio::time::Instant,
        interval: Duration,
        path: &str,
    ) -> Result<(), ArmError> {
        let timeout = self.inner.long_running.timeout;
        if started.elapsed() + interval > timeout {
            return Err(ArmError::OperationFailed {
                status: "TimedOut".to_owned(),
                code: None,
                message: format!(
                    "{path} was still running after {}",
                    humanize(started.elapsed())
                ),
            });
        }
        tokio::time::sleep(interval).await;
        Ok(())
    }

    /// Sends one request through the pipeline; 2xx comes back as an [`ArmResponse`],
    /// anything else as an [`ArmError`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        idempotency: Idempotency,
    ) -> Result<ArmResponse, ArmError> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let path = url.path().to_owned();
        let mut request = Request::new(url, method);
        request.insert_header(CORRELATION_REQUEST_ID, correlation_id.clone());
        request.insert_header("accept", "application/json");
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            request.set_body(body);
        }
        let mut context = Context::new();
        context.insert(IdempotencyMark(idempotency));
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let response = self
            .inner
            .pipeline
            .send(&context, &mut request, Some(options))
            .await
            .map_err(|error| transport_error(&error, idempotency))?;
        let (status, headers, body) = response.deconstruct();
        let status = u16::from(status);
        let server_date = headers.get_optional_str(&DATE).and_then(parse_http_date);
        if let Some(date) = server_date {
            self.record_server_date(date);
        }
        tracing::debug!(
            %method,
            %path,
            status,
            request_id = headers.get_optional_str(&REQUEST_ID).unwrap_or("-"),
            correlation_id = %correlation_id,
            "ARM call"
        );
        if (200..300).contains(&status) {
            return Ok(ArmResponse {
                status,
                headers,
                body: body.to_vec(),
                server_date,
            });
        }
        let retry_after = retry_after_from_headers(&headers);
        let mut error = ArmError::from_response(status, retry_after, &body);
        if let ArmError::Server { not_retried, .. } = &mut error {
            let throttled = status == 503 && retry_after.is_some();
            *not_retried = idempotency == Idempotency::NonIdempotent && !throttled;
        }
        Err(error)
    }

    fn record_server_date(&self, date: Timestamp) {
        let offset = date.duration_since(Timestamp::now());
        let millis = i64::try_from(offset.as_millis()).unwrap_or(0);
        self.inner
            .server_offset_ms
            .store(millis.max(NO_OFFSET + 1), Ordering::Relaxed);
    }
}

/// Sets `User-Agent` to the transport's (`jit/<version>`), replacing the Azure SDK's
/// `azsdk-rust-…` value, so ARM's logs show which tool called.
#[derive(Debug)]
struct UserAgentPolicy(HeaderValue);

#[async_trait::async_trait]
impl Policy for UserAgentPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        request.insert_header(USER_AGENT, self.0.clone());
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn encode<B: Serialize + ?Sized>(body: &B, path: &str) -> Result<Vec<u8>, ArmError> {
    serde_json::to_vec(body).map_err(|error| ArmError::InvalidRequest {
        detail: format!("cannot encode the body for {path}: {error}"),
    })
}

/// The interval before the next poll: the response's `Retry-After`, else the default.
fn poll_interval(response: &ArmResponse, options: &LongRunningOptions) -> Duration {
    response
        .headers
        .get_optional_str(&RETRY_AFTER)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(options.default_poll_interval)
        .min(Duration::from_secs(60))
}

fn status_error(response: &ArmResponse) -> Option<crate::azure::models::CloudErrorBody> {
    serde_json::from_slice::<AsyncOperationStatus>(&response.body)
        .ok()
        .and_then(|status| status.error)
}

/// Parses an HTTP `Date` header (`Tue, 15 Nov 1994 08:12:31 GMT`).
pub fn parse_http_date(value: &str) -> Option<Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value.trim())
        .ok()
}

/// Maps a pipeline error (no HTTP response) to an [`ArmError`].
fn transport_error(error: &azure_core::Error, idempotency: Idempotency) -> ArmError {
    if let Some(credential) = error.downcast_ref::<CredentialError>() {
        return ArmError::Credential(credential.clone());
    }
    let detail = error_chain(error);
    match error.kind() {
        ErrorKind::Connection => ArmError::Transport {
            detail,
            ambiguous: false,
        },
        ErrorKind::Io => ArmError::Transport {
            detail,
            ambiguous: idempotency == Idempotency::NonIdempotent,
        },
        ErrorKind::Credential => ArmError::Credential(CredentialError::from_azure(
            CredentialSource::External,
            error,
        )),
        ErrorKind::DataConversion => ArmError::InvalidResponse { detail },
        _ => ArmError::InvalidRequest { detail },
    }
}

/// The error and its sources, joined: "failed to execute request: connection refused".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
