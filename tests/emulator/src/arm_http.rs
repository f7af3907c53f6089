//! The seam between the HTTPS front end and the emulated resource providers.
//!
//! The front end ([`crate::server`]) terminates TLS, authenticates the bearer token,
//! applies injected faults and adds the headers ARM puts on every response. What is left
//! is an [`ArmRequest`] from an authenticated caller, which a resource provider turns into
//! an [`ArmResponse`]. Keeping the two apart lets the providers be tested without TLS and
//! keeps ARM's cross-cutting behaviour in one place.

use serde::Serialize;
use serde_json::Value;

/// An authenticated request to an ARM route.
#[derive(Debug, Clone)]
pub struct ArmRequest {
    /// `GET`, `PUT`, `POST`, `DELETE` or `PATCH`.
    pub method: http::Method,
    /// The path as sent, percent-decoded, without the query (ARM ids keep the caller's casing).
    pub path: String,
    /// Query parameters in order, percent-decoded (`api-version`, `$expand`, `$skipToken`…).
    pub query: Vec<(String, String)>,
    /// The request body; empty when none was sent.
    pub body: bytes::Bytes,
    /// Who is calling, from the bearer token.
    pub caller: Caller,
    /// The public address ARM attributes to the caller (the emulator's configured client
    /// IP), as ARM forwards it to resource providers in `x-ms-client-ip-address`.
    pub client_ip: String,
    /// The base URL of this ARM endpoint, for building `nextLink` and operation URLs.
    pub base_url: String,
}

impl ArmRequest {
    /// The first value of a query parameter, compared case-insensitively as ARM does.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The `api-version` query parameter.
    pub fn api_version(&self) -> Option<&str> {
        self.query_value("api-version")
    }
}

/// The principal behind a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The UPN of a user (`azureuser@contoso.com`) or the application id of a service
    /// principal or managed identity; JIT records it as `requestor`.
    pub name: String,
    /// The principal's object id.
    pub object_id: String,
    /// The tenant the token was issued for.
    pub tenant_id: String,
}

/// What a resource provider answers.
#[derive(Debug, Clone)]
pub struct ArmResponse {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// Extra headers (for example `Azure-AsyncOperation`, `Location`, `Retry-After`).
    pub headers: Vec<(String, String)>,
    /// The JSON body, or `None` for an empty body.
    pub body: Option<Value>,
    /// Emulator bookkeeping, never sent: ids of the concurrent-writer hooks
    /// ([`crate::hooks`]) this request fired, for the request log.
    pub fired_hooks: Vec<u64>,
}

impl ArmResponse {
    /// A response with a JSON body.
    pub fn json(status: http::StatusCode, body: impl Serialize) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(serde_json::to_value(body).unwrap_or(Value::Null)),
            fired_hooks: Vec::new(),
        }
    }

    /// `200 OK` with a JSON body.
    pub fn ok(body: impl Serialize) -> Self {
        Self::json(http::StatusCode::OK, body)
    }

    /// A response without a body.
    pub fn empty(status: http::StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            fired_hooks: Vec::new(),
        }
    }

    /// A `CloudError` response: `{"error":{"code":…,"message":…}}`, as ARM and every
    /// resource provider send it.
    pub fn error(status: http::StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::json(status, CloudError::new(code, message))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The ARM error body (`CloudError` in the specs).
#[derive(Debug, Clone, Serialize)]
pub struct CloudError {
    /// The error.
    pub error: CloudErrorBody,
}

/// The inner error of a [`CloudError`].
#[derive(Debug, Clone, Serialize)]
pub struct CloudErrorBody {
    /// A machine-readable code such as `ResourceNotFound` or `AuthorizationFailed`.
    pub code: String,
    /// A human-readable message.
    pub message: String,
    /// The target of the error, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Nested errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<CloudErrorBody>,
}

impl CloudError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: CloudErrorBody {
                code: code.to_owned(),
                message: message.into(),
                target: None,
                details: Vec::new(),
            },
        }
    }
}
