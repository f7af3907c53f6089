//! An HTTP answer before it becomes a hyper response, shared by everything that answers:
//! the ARM pipeline, the identity endpoints, the admin API.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::arm_http::ArmResponse;

/// An HTTP answer before it becomes a hyper response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// A JSON body (`application/json; charset=utf-8`).
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Self::with_body(status, "application/json; charset=utf-8", body)
    }

    /// A plain-text body.
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Self::with_body(
            status,
            "text/plain; charset=utf-8",
            text.into().into_bytes(),
        )
    }

    /// No body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            status,
            headers,
            body: Bytes::from(body),
        }
    }

    /// Sets a header; a value that is not a valid header value is dropped (and traced).
    pub fn set_header(&mut self, name: &str, value: &str) {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => tracing::warn!(header = name, "dropped an invalid response header"),
        }
    }

    /// Sets a header and returns the reply.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.set_header(name, value);
        self
    }

    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

impl From<ArmResponse> for Reply {
    fn from(response: ArmResponse) -> Self {
        let mut reply = match &response.body {
            Some(body) => Reply::json(response.status, body),
            None => Reply::empty(response.status),
        };
        for (name, value) in &response.headers {
            reply.set_header(name, value);
        }
        reply
    }
}
