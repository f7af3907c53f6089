//! Shapes shared by every provider: errors, references, durations, times.

use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Serialize};

/// ARM's error envelope (`CloudError` in the specs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudError {
    /// The error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CloudErrorBody>,
}

/// The body of a [`CloudError`] (also used for nested `details`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudErrorBody {
    /// The error code (`AuthorizationFailed`, `ResourceNotFound`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The target of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Nested errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<CloudErrorBody>,
    /// Additional information.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_info: Vec<ErrorAdditionalInfo>,
}

/// Additional information in a [`CloudErrorBody`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorAdditionalInfo {
    /// The kind of information.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub info_type: Option<String>,
    /// The information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

impl CloudError {
    /// Parses an error body: the standard envelope, or a bare `{"code","message"}` as
    /// some providers send. `None` when the body is neither.
    pub fn parse(body: &[u8]) -> Option<CloudError> {
        if let Ok(envelope) = serde_json::from_slice::<CloudError>(body)
            && envelope.error.is_some()
        {
            return Some(envelope);
        }
        let bare = serde_json::from_slice::<CloudErrorBody>(body).ok()?;
        (bare.code.is_some() || bare.message.is_some()).then_some(CloudError { error: Some(bare) })
    }

    /// The top-level error code.
    pub fn code(&self) -> Option<&str> {
        self.error.as_ref()?.code.as_deref()
    }

    /// The top-level message followed by the messages of its details (Resource Graph puts
    /// the useful part, such as why a query is invalid, in the details).
    pub fn full_message(&self) -> String {
        let Some(body) = &self.error else {
            return String::new();
        };
        let mut parts: Vec<&str> = Vec::new();
        if let Some(message) = body
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            parts.push(message);
        }
        for detail in &body.details {
            if let Some(message) = detail
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                && !parts.contains(&message)
            {
                parts.push(message);
            }
        }
        parts.join(" ")
    }
}

/// One page of an ARM list (`{"value": [...], "nextLink": "..."}`); `nextLink` is absent
/// on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The URL of the next page, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// A reference to another resource (`{"id": "…"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubResource {
    /// The referenced resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// An ISO-8601 duration as Azure writes it (`PT3H`, `PT0.5H`, `P1D`), kept verbatim so a
/// policy is written back exactly as read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IsoDuration(pub String);

/// A duration string that is not an ISO-8601 duration `jit` can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{value}' is not a usable duration ({reason})")]
pub struct DurationError {
    /// The text.
    pub value: String,
    /// Why.
    pub reason: String,
}

impl IsoDuration {
    /// The duration of `duration`, written the ISO-8601 way (`PT1H30M`).
    pub fn from_duration(duration: SignedDuration) -> Self {
        IsoDuration(duration.to_string())
    }

    /// The text as Azure sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the duration (see [`parse_duration`]).
    pub fn to_duration(&self) -> Result<SignedDuration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl From<SignedDuration> for IsoDuration {
    fn from(duration: SignedDuration) -> Self {
        IsoDuration::from_duration(duration)
    }
}

/// Parses an ISO-8601 duration such as `PT3H`, `PT0.5H`, `PT90M`, `P1D` or `P1DT2H`
/// (days count as 24 hours; years and months are refused as ambiguous). jiff's friendly
/// forms (`3h`, `90 minutes`) are accepted as well. Negative durations are refused.
pub fn parse_duration(text: &str) -> Result<SignedDuration, DurationError> {
    let text = text.trim();
    let error = |reason: String| DurationError {
        value: text.to_owned(),
        reason,
    };
    let duration = match SignedDuration::from_str(text) {
        Ok(duration) => duration,
        Err(first) => {
            let span = Span::from_str(text).map_err(|_| error(first.to_string()))?;
            span.to_duration(SpanRelativeTo::days_are_24_hours())
                .map_err(|_| error("years and months have no fixed length".to_owned()))?
        }
    };
    if duration.is_negative() {
        return Err(error("it is negative".to_owned()));
    }
    Ok(duration)
}

/// Serde helpers for Azure timestamps: RFC 3339 with an offset, and (as some services
/// send) without one, which means UTC.
pub mod azure_time {
    use std::str::FromStr;

    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses an Azure timestamp; a missing offset means UTC.
    pub fn parse(text: &str) -> Result<Timestamp, jiff::Error> {
        let text = text.trim();
        match Timestamp::from_str(text) {
            Ok(timestamp) => Ok(timestamp),
            Err(error) => jiff::civil::DateTime::from_str(text)
                .and_then(|civil| jiff::tz::TimeZone::UTC.to_timestamp(civil))
                .map_err(|_| error),
        }
    }

    /// Deserialises a required timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Serialises as RFC 3339 in UTC.
    pub fn serialize<S: Serializer>(
        timestamp: &Timestamp,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(timestamp)
    }

    /// The same for optional fields (use with `default`).
    pub mod option {
        use jiff::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Deserialises an optional timestamp.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Timestamp>, D::Error> {
            let text = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.map(|text| super::parse(&text).map_err(serde::de::Error::custom))
                .transpose()
        }

        /// Serialises an optional timestamp.
        pub fn serialize<S: Serializer>(
            timestamp: &Option<Timestamp>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match timestamp {
                Some(timestamp) => serializer.collect_str(timestamp),
                None => serializer.serialize_none(),
            }
        }
    }
}
