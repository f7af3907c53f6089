//! The HTTPS front door: one loopback listener for ARM, the identity endpoints, `/ip`
//! and the admin API.
//!
//! Everything ARM does to every request lives here, so the resource providers only see
//! an authenticated [`ArmRequest`]: routing with case-insensitive paths, injected faults,
//! the bearer-token check (401 with ARM's codes and `WWW-Authenticate`), the RBAC check
//! (403 `AuthorizationFailed`), and the headers ARM puts on every answer
//! (`x-ms-request-id`, an echoed `x-ms-correlation-request-id`, `x-ms-routing-request-id`,
//! the remaining-quota headers, a `Date` taken from the virtual clock).
//!
//! Each accepted socket gets `TCP_NODELAY` (keep-alive responses otherwise stall on
//! Nagle's algorithm) and is served with HTTP/1.1 or HTTP/2 as ALPN decides. A
//! "connection reset" fault drops the socket with `SO_LINGER` 0, so the client sees a
//! real RST rather than an orderly close.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jiff::Timestamp;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::arm_http::{ArmRequest, ArmResponse, Caller};
use crate::faults::FaultKind;
use crate::front_end::{FrontEnd, RequestRecord};
use crate::identity::TokenRejection;
use crate::lock::lock;
use crate::reply::Reply;

/// The largest request body accepted (ARM's own limit is about 4 MB for most writes).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A TLS handshake that has not finished by then is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Binds the front door; only loopback addresses are allowed.
pub(crate) async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    if !listen.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the emulator listens on loopback only, not {listen}"),
        ));
    }
    TcpListener::bind(listen).await
}

/// Accepts and serves connections until the returned task is aborted (which also ends
/// every connection it started).
pub(crate) fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    front: Arc<FrontEnd>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(stream, peer, acceptor.clone(), front.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

/// Lets a request handler drop its own connection.
#[derive(Debug, Default)]
struct ResetSwitch {
    requested: AtomicBool,
    notify: Notify,
}

impl ResetSwitch {
    fn trigger(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// A TCP stream that closes with RST instead of FIN when its connection was reset on
/// purpose.
struct ResettableStream {
    inner: TcpStream,
    switch: Arc<ResetSwitch>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.switch.requested.load(Ordering::SeqCst)
            && let Err(error) = self.inner.set_zero_linger()
        {
            tracing::debug!(%error, "could not arm the connection reset");
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(context, buffer)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The error a handler returns after resetting its connection (hyper then stops).
#[derive(Debug, thiserror::Error)]
#[error("connection reset by an injected fault")]
struct InjectedReset;

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    front: Arc<FrontEnd>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
    }
    let switch = Arc::new(ResetSwitch::default());
    let stream = ResettableStream {
        inner: stream,
        switch: switch.clone(),
    };
    let tls_stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => tls_stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, %peer, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let handler_switch = switch.clone();
    let service = hyper::service::service_fn(move |request| {
        let front = front.clone();
        let switch = handler_switch.clone();
        async move { handle(front, switch, request).await }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        }
        () = switch.notify.notified() => {
            tracing::debug!(%peer, "connection reset by an injected fault");
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Admin(String),
    MyIp,
    CloudMetadata,
    ManagedIdentity,
    InstanceDiscovery,
    Token { tenant: String, v2: bool },
    OpenIdConfiguration { tenant: String },
    SigningKeys,
    Arm,
}

impl Route {
    fn of(path: &str) -> Route {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let lower: Vec<String> = segments
            .iter()
            .map(|segment| segment.to_ascii_lowercase())
            .collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["_emulator", ..] => Route::Admin(segments[1..].join("/")),
            ["ip"] => Route::MyIp,
            ["metadata", "endpoints"] => Route::CloudMetadata,
            ["msi", "token"] => Route::ManagedIdentity,
            ["common", "discovery", "instance"] => Route::InstanceDiscovery,
            [_, "oauth2", "v2.0", "token"] => Route::Token {
                tenant: segments[0].to_owned(),
                v2: true,
            },
            [_, "oauth2", "token"] => Route::Token {
                tenant: segments[0].to_owned(),
                v2: false,
            },
            [_, "v2.0", ".well-known", "openid-configuration"]
            | [_, ".well-known", "openid-configuration"] => Route::OpenIdConfiguration {
                tenant: segments[0].to_owned(),
            },
            [_, "discovery", "v2.0", "keys"] | [_, "discovery", "keys"] => Route::SigningKeys,
            _ => Route::Arm,
        }
    }

    fn is_identity(&self) -> bool {
        matches!(
            self,
            Route::ManagedIdentity
                | Route::InstanceDiscovery
                | Route::Token { .. }
                | Route::OpenIdConfiguration { .. }
                | Route::SigningKeys
        )
    }
}

/// A request with its body read.
struct ReadRequest {
    method: Method,
    path: String,
    raw_path_and_query: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

async fn handle(
    front: Arc<FrontEnd>,
    switch: Arc<ResetSwitch>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    let (parts, body) = request.into_parts();
    let raw_path_and_query = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |value| value.as_str().to_owned(),
    );
    let path = percent_decode(parts.uri.path());
    let query = parts
        .uri
        .query()
        .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
        .unwrap_or_default();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "could not read a request body");
            let reply = Reply::json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": {"code": "RequestEntityTooLarge", "message": "The request body could not be read or is too large."}}),
            );
            return Ok(finish(&front, reply).into_response());
        }
    };
    let request = ReadRequest {
        method: parts.method,
        path,
        raw_path_and_query,
        query,
        headers: parts.headers,
        body,
    };
    let route = Route::of(&request.path);
    if let Route::Admin(rest) = &route {
        let reply = crate::admin::handle(&front, &request.method, rest, &request.body);
        return Ok(finish(&front, reply).into_response());
    }

    let arrived = front.clock.now();
    let started = std::time::Instant::now();
    let outcome = front
        .faults
        .evaluate(request.method.as_str(), &request.path);
    if !outcome.delay.is_zero() {
        tokio::time::sleep(outcome.delay).await;
    }
    let (reply, hooks) = match &outcome.failure {
        Some(FaultKind::ConnectionReset) => {
            front.record(RequestRecord {
                time: arrived,
                method: request.method.to_string(),
                path: request.raw_path_and_query,
                status: None,
                faults: outcome.hit_ids,
                hooks: Vec::new(),
            });
            switch.trigger();
            return Err(InjectedReset);
        }
        Some(failure) => (fault_reply(&front, &route, &request, failure), Vec::new()),
        None => serve(&front, &route, &request),
    };
    let reply = if route == Route::Arm || route == Route::CloudMetadata {
        arm_headers(&front, &request, reply)
    } else {
        reply
    };
    lock(&front.timings).record(request.method.as_str(), &request.path, started.elapsed());
    front.record(RequestRecord {
        time: arrived,
        method: request.method.to_string(),
        path: request.raw_path_and_query,
        status: Some(reply.status.as_u16()),
        faults: outcome.hit_ids,
        hooks,
    });
    Ok(finish(&front, reply).into_response())
}

/// Headers every answer gets.
fn finish(front: &FrontEnd, mut reply: Reply) -> Reply {
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&front.clock.now())
        .unwrap_or_default();
    reply.set_header("date", &date);
    reply
}

/// Serves a request no fault hit; also returns the hooks it fired.
fn serve(front: &FrontEnd, route: &Route, request: &ReadRequest) -> (Reply, Vec<u64>) {
    if *route == Route::Arm {
        return arm(front, request);
    }
    let is_get = request.method == Method::GET;
    let reply = match route {
        Route::Token { tenant, v2 } if request.method == Method::POST => front
            .identity
            .token_endpoint(tenant, *v2, &request.headers, &request.body),
        Route::OpenIdConfiguration { tenant } if is_get => {
            front.identity.openid_configuration(&front.base_url, tenant)
        }
        Route::InstanceDiscovery if is_get => front
            .identity
            .instance_discovery(&front.base_url, &request.query),
        Route::SigningKeys if is_get => front.identity.signing_keys(),
        Route::ManagedIdentity if is_get => front
            .identity
            .managed_identity(&request.headers, &request.query),
        Route::MyIp if is_get => my_ip(front, &request.query),
        Route::CloudMetadata if is_get => cloud_metadata(front, &request.query),
        _ => Reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method_not_allowed", "error_description": format!("{} is not allowed on {}", request.method, request.path)}),
        ),
    };
    (reply, Vec::new())
}

/// `/ip`: the caller's public address, as a "what is my IP" service answers.
fn my_ip(front: &FrontEnd, query: &[(String, String)]) -> Reply {
    let address = front.my_ip();
    let wants_json = query
        .iter()
        .any(|(key, value)| key == "format" && value.eq_ignore_ascii_case("json"));
    if wants_json {
        Reply::json(StatusCode::OK, &json!({ "ip": address }))
    } else {
        Reply::text(StatusCode::OK, address)
    }
}

/// `GET /metadata/endpoints`: ARM's cloud metadata, pointing at this emulator (what
/// `az cloud register --endpoint-resource-manager` reads).
fn cloud_metadata(front: &FrontEnd, query: &[(String, String)]) -> Reply {
    let Some(api_version) = query
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| value.as_str())
    else {
        return ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
        .into();
    };
    let base = &front.base_url;
    let audiences = [
        "https://management.core.windows.net/",
        "https://management.azure.com/",
    ];
    if api_version == "2015-01-01" {
        return Reply::json(
            StatusCode::OK,
            &json!({
                "galleryEndpoint": "",
                "graphEndpoint": "https://graph.windows.net/",
                "portalEndpoint": format!("{base}/"),
                "authentication": { "loginEndpoint": format!("{base}/"), "audiences": audiences },
            }),
        );
    }
    let cloud = json!({
        "name": "JitEmulator",
        "resourceManager": format!("{base}/"),
        "portal": format!("{base}/"),
        "authentication": {
            "loginEndpoint": format!("{base}/"),
            "audiences": audiences,
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "graph": "https://graph.windows.net/",
        "graphAudience": "https://graph.windows.net/",
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "gallery": "",
        "sqlManagement": "",
        "batch": "https://batch.core.windows.net/",
        "media": "",
        "vmImageAliasDoc": "",
        "activeDirectoryDataLake": "",
        "suffixes": {
            "storage": "core.windows.net",
            "keyVaultDns": "vault.azure.net",
            "sqlServerHostname": "database.windows.net",
            "acrLoginServer": "azurecr.io",
        },
    });
    if api_version == "2019-05-01" {
        Reply::json(StatusCode::OK, &json!([cloud]))
    } else {
        Reply::json(StatusCode::OK, &cloud)
    }
}

/// The ARM pipeline: authenticate, authorise, dispatch. Also returns the hooks the
/// request fired.
fn arm(front: &FrontEnd, request: &ReadRequest) -> (Reply, Vec<u64>) {
    let refused = |reply: Reply| (reply, Vec::new());
    let token = match bearer_token(&request.headers) {
        Ok(token) => token,
        Err(reply) => return refused(with_www_authenticate(front, *reply, None)),
    };
    let authenticated = match front.identity.authenticate(token) {
        Ok(authenticated) => authenticated,
        Err(TokenRejection::Unknown) => {
            let reply: Reply = ArmResponse::error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
            .into();
            return refused(with_www_authenticate(
                front,
                reply,
                Some("The access token is invalid."),
            ));
        }
        Err(TokenRejection::Expired { expired_on }) => {
            return refused(expired_token_reply(front, expired_on));
        }
    };
    let arm_request = arm_request(front, request, authenticated.caller);
    if let Some(action) = crate::providers::required_action(&arm_request) {
        let allowed = front
            .identity
            .principals()
            .get(authenticated.principal)
            .is_some_and(|principal| principal.allows(&action));
        if !allowed {
            tracing::debug!(%action, "RBAC refused a request");
            return refused(authorization_failed(&arm_request, &action));
        }
    }
    let mut response = crate::providers::dispatch(&front.state, &arm_request);
    let hooks = std::mem::take(&mut response.fired_hooks);
    (response.into(), hooks)
}

fn arm_request(front: &FrontEnd, request: &ReadRequest, caller: Caller) -> ArmRequest {
    ArmRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        body: request.body.clone(),
        caller,
        client_ip: front.state.client_ip().to_string(),
        base_url: front.base_url.clone(),
    }
}

/// The bearer token, or ARM's 401 `AuthenticationFailed` when the header is missing or
/// malformed.
fn bearer_token(headers: &HeaderMap) -> Result<&str, Box<Reply>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Box::new(
            ArmResponse::error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
            .into(),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    token.ok_or_else(|| {
        Box::new(
            ArmResponse::error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
            .into(),
        )
    })
}

fn with_www_authenticate(front: &FrontEnd, reply: Reply, description: Option<&str>) -> Reply {
    let authority = format!("{}/{}", front.base_url, front.identity.tenant_id());
    let value = match description {
        Some(description) => format!(
            "Bearer authorization_uri=\"{authority}\", error=\"invalid_token\", error_description=\"{description}\""
        ),
        None => format!(
            "Bearer authorization_uri=\"{authority}\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\""
        ),
    };
    reply.with_header("www-authenticate", &value)
}

/// ARM's 401 `ExpiredAuthenticationToken`, in its `M/d/yyyy h:mm:ss tt` format.
fn expired_token_reply(front: &FrontEnd, expired_on: Timestamp) -> Reply {
    let format = |time: Timestamp| {
        time.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%-m/%-d/%Y %-I:%M:%S %p")
            .to_string()
    };
    let reply: Reply = ArmResponse::error(
        StatusCode::UNAUTHORIZED,
        "ExpiredAuthenticationToken",
        format!(
            "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
            format(expired_on),
            format(front.clock.now())
        ),
    )
    .into();
    with_www_authenticate(front, reply, Some("The access token has expired."))
}

fn authorization_failed(request: &ArmRequest, action: &str) -> Reply {
    ArmResponse::error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            request.caller.name,
            request.caller.object_id,
            authorization_scope(request, action)
        ),
    )
    .into()
}

/// The scope ARM names in `AuthorizationFailed`: the resource acted on (for a POST
/// action, the path without its action segment).
fn authorization_scope(request: &ArmRequest, action: &str) -> String {
    let path = request.path.trim_end_matches('/');
    if request.method == Method::POST
        && action.to_ascii_lowercase().ends_with("/action")
        && let Some((resource, _)) = path.rsplit_once('/')
    {
        return resource.to_owned();
    }
    path.to_owned()
}

/// What an injected failure answers.
fn fault_reply(
    front: &FrontEnd,
    route: &Route,
    request: &ReadRequest,
    failure: &FaultKind,
) -> Reply {
    let identity_route = route.is_identity();
    let aad = |status: StatusCode, error: &str, description: &str| {
        Reply::json(
            status,
            &json!({
                "error": error,
                "error_description": description,
                "error_codes": [],
                "timestamp": front.clock.now().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                "trace_id": uuid::Uuid::new_v4().to_string(),
                "correlation_id": uuid::Uuid::new_v4().to_string(),
            }),
        )
    };
    match failure {
        FaultKind::Throttle {
            retry_after_seconds,
        } => {
            let reply = if identity_route {
                aad(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "The server is temporarily too busy to handle the request. Please try again later.",
                )
            } else {
                throttled(request, *retry_after_seconds)
            };
            reply.with_header("retry-after", &retry_after_seconds.to_string())
        }
        FaultKind::InternalError => {
            if identity_route {
                aad(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "An internal error occurred. Please try again later.",
                )
            } else {
                ArmResponse::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Encountered internal server error. Diagnostic information: an error was injected by the emulator.",
                )
                .into()
            }
        }
        FaultKind::ServiceUnavailable {
            retry_after_seconds,
        } => {
            let reply = if identity_route {
                aad(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "The service is temporarily unavailable. Please try again later.",
                )
            } else {
                ArmResponse::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is currently unavailable. Please try again later.",
                )
                .into()
            };
            match retry_after_seconds {
                Some(seconds) => reply.with_header("retry-after", &seconds.to_string()),
                None => reply,
            }
        }
        FaultKind::ExpiredToken => {
            let now = front.clock.now();
            expired_token_reply(
                front,
                now.checked_sub(jiff::SignedDuration::from_secs(1))
                    .unwrap_or(now),
            )
        }
        FaultKind::Forbidden => {
            let caller = bearer_token(&request.headers)
                .ok()
                .and_then(|token| front.identity.authenticate(token).ok())
                .map_or_else(
                    || Caller {
                        name: "unknown".to_owned(),
                        object_id: "00000000-0000-0000-0000-000000000000".to_owned(),
                        tenant_id: front.identity.tenant_id().to_owned(),
                    },
                    |authenticated| authenticated.caller,
                );
            let arm_request = arm_request(front, request, caller);
            let action = crate::providers::required_action(&arm_request)
                .unwrap_or_else(|| fallback_action(&request.method, &request.path));
            authorization_failed(&arm_request, &action)
        }
        // Handled before a reply is built.
        FaultKind::Latency { .. } | FaultKind::ConnectionReset => Reply::empty(StatusCode::OK),
    }
}

/// An action name for a route the providers do not name one for.
fn fallback_action(method: &Method, path: &str) -> String {
    let verb = match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        Method::POST => "action",
        _ => "write",
    };
    format!("{}/{verb}", path.trim_matches('/'))
}

/// ARM's 429 for a subscription or tenant read/write budget.
fn throttled(request: &ReadRequest, retry_after_seconds: u32) -> Reply {
    let operation = quota_kind(&request.method);
    let subscription = request
        .path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .windows(2)
        .find(|pair| pair[0].eq_ignore_ascii_case("subscriptions"))
        .map(|pair| pair[1].to_owned());
    match subscription {
        Some(subscription) => ArmResponse::error(
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled",
            format!(
                "Number of '{operation}' requests for subscription '{subscription}' exceeded the limit. Please try again after '{retry_after_seconds}' seconds."
            ),
        ),
        None => ArmResponse::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TenantRequestsThrottled",
            format!(
                "Number of '{operation}' requests for the tenant exceeded the limit. Please try again after '{retry_after_seconds}' seconds."
            ),
        ),
    }
    .into()
}

fn quota_kind(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        _ => "write",
    }
}

/// ARM's response headers.
fn arm_headers(front: &FrontEnd, request: &ReadRequest, mut reply: Reply) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = request
        .headers
        .get("x-ms-correlation-request-id")
        .and_then(|value| value.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let routing = format!(
        "WESTEUROPE:{}:{}",
        front
            .clock
            .now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%Y%m%dT%H%M%SZ"),
        uuid::Uuid::new_v4()
    );
    reply.set_header("x-ms-request-id", &request_id);
    reply.set_header("x-ms-correlation-request-id", &correlation_id);
    reply.set_header("x-ms-routing-request-id", &routing);
    let (quota_header, remaining) = match quota_kind(&request.method) {
        "read" => ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        "delete" => ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
        _ => ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
    };
    reply.set_header(quota_header, remaining);
    let wants_client_request_id = request
        .headers
        .get("x-ms-return-client-request-id")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    if wants_client_request_id
        && let Some(client_request_id) = request
            .headers
            .get("x-ms-client-request-id")
            .and_then(|value| value.to_str().ok())
    {
        reply.set_header("x-ms-client-request-id", client_request_id);
    }
    reply.set_header("cache-control", "no-cache");
    reply.set_header("pragma", "no-cache");
    reply.set_header("expires", "-1");
    reply.set_header(
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    );
    reply.set_header("x-content-type-options", "nosniff");
    reply.set_header("content-type", "application/json; charset=utf-8");
    reply
}

/// Percent-decodes a path (invalid escapes and non-UTF-8 results are kept as sent).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && let Some(hex) = path.get(index + 1..index + 3)
            && let Ok(value) = u8::from_str_radix(hex, 16)
        {
            decoded.push(value);
            index += 3;
            continue;
        }
        decoded.push(byte);
        index += 1;
    }
    String::from_utf8(decoded).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_case_insensitive() {
        assert_eq!(Route::of("/IP"), Route::MyIp);
        assert_eq!(
            Route::of("/TENANT/OAuth2/V2.0/Token"),
            Route::Token {
                tenant: "TENANT".to_owned(),
                v2: true
            }
        );
        assert_eq!(
            Route::of("/t/v2.0/.well-known/openid-configuration"),
            Route::OpenIdConfiguration {
                tenant: "t".to_owned()
            }
        );
        assert_eq!(
            Route::of("/_Emulator/Clock"),
            Route::Admin("Clock".to_owned())
        );
        assert_eq!(Route::of("/subscriptions"), Route::Arm);
        assert_eq!(Route::of("/Metadata/Endpoints"), Route::CloudMetadata);
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(percent_decode("/a%20b/%2Fc"), "/a b//c");
        assert_eq!(percent_decode("/bad%zz"), "/bad%zz");
        assert_eq!(percent_decode("/end%2"), "/end%2");
    }
}
