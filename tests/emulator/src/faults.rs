//! Fault injection: make chosen routes fail the way Azure fails, on purpose.
//!
//! A client's retry, back-off, re-authentication and error reporting can only be tested
//! against failures it cannot predict from its own code: throttling with `Retry-After`,
//! transient 500/503, a token ARM suddenly calls expired, a role assignment that went
//! away (403 `AuthorizationFailed`), slow answers and connections reset mid-request.
//! Each [`FaultSpec`] names a route pattern (method + case-insensitive path glob or regex)
//! and fires with a probability or for "the next N calls". Faults come from the admin
//! endpoint (`POST /_emulator/faults`), the binary's `--faults FILE`, or
//! [`crate::Emulator::inject_fault`]; every fault counts its hits so a test can assert
//! how many retries a client made.
//!
//! Faults apply to every route except the admin endpoint itself, before authentication,
//! as a gateway in front of ARM would.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault to inject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// HTTP method to match (`GET`, `PUT`…); absent or `*` matches any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path glob, case-insensitive, matched against the whole path without the query:
    /// `*` matches any run of characters (slashes included), `?` one character.
    /// Example: `/subscriptions/*/jitNetworkAccessPolicies/*/initiate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A regular expression instead of `path` (case-insensitive, unanchored unless you
    /// anchor it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// What happens.
    pub fault: FaultKind,
    /// Chance that a matching call is hit, from 0 to 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Hit only the next N matching calls (default: every matching call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// The ways a call can fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// `429 Too Many Requests` with `Retry-After` and ARM's throttling error.
    Throttle {
        /// Seconds in `Retry-After` (default 1).
        #[serde(default = "one_second")]
        retry_after_seconds: u32,
    },
    /// `500 Internal Server Error`.
    InternalError,
    /// `503 Service Unavailable`, with `Retry-After` when given.
    ServiceUnavailable {
        /// Seconds in `Retry-After`, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u32>,
    },
    /// `401 ExpiredAuthenticationToken`, as if the caller's token had just expired.
    ExpiredToken,
    /// `403 AuthorizationFailed` naming the action the route needs.
    Forbidden,
    /// Answer normally, but only after this extra delay (real time), e.g. `"500ms"`,
    /// `"PT2S"`.
    Latency {
        /// How long to wait.
        delay: String,
    },
    /// Drop the TCP connection without answering (the client sees a reset).
    ConnectionReset,
}

fn one_second() -> u32 {
    1
}

/// Why a fault could not be added.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// Neither or both of `path` and `path_regex` were given.
    #[error("a fault needs exactly one of `path` and `path_regex`")]
    PathChoice,
    /// The regular expression does not compile.
    #[error("invalid path_regex: {0}")]
    Regex(#[from] regex::Error),
    /// The probability is not between 0 and 1.
    #[error("probability must be between 0 and 1, got {0}")]
    Probability(f64),
    /// The latency is not a duration.
    #[error(
        "invalid latency delay {0:?}: use an ISO-8601 or friendly duration such as PT2S or 500ms"
    )]
    Delay(String),
}

/// A fault as the admin endpoint reports it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultStatus {
    /// Identifies the fault (for `DELETE /_emulator/faults/{id}`).
    pub id: u64,
    /// The fault as given.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// How many calls it has hit.
    pub hits: u64,
    /// How many more calls it will hit, when limited by `times`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

/// What the front end must do to a call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultOutcome {
    /// Wait this long first.
    pub delay: Duration,
    /// Then fail this way (`None`: serve normally).
    pub failure: Option<FaultKind>,
    /// The ids of the faults that hit.
    pub hit_ids: Vec<u64>,
}

#[derive(Debug)]
enum Matcher {
    Glob(regex::Regex),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Glob(regex) | Matcher::Regex(regex) => regex.is_match(path),
        }
    }
}

#[derive(Debug)]
struct ActiveFault {
    id: u64,
    spec: FaultSpec,
    matcher: Matcher,
    delay: Duration,
    hits: u64,
    remaining: Option<u32>,
}

/// The set of injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultTable>,
}

#[derive(Debug, Default)]
struct FaultTable {
    next_id: u64,
    faults: Vec<ActiveFault>,
}

impl Faults {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fault; returns its id.
    pub fn add(&self, spec: FaultSpec) -> Result<u64, FaultError> {
        let matcher = match (&spec.path, &spec.path_regex) {
            (Some(glob), None) => Matcher::Glob(glob_to_regex(glob)?),
            (None, Some(pattern)) => Matcher::Regex(
                regex::RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()?,
            ),
            _ => return Err(FaultError::PathChoice),
        };
        if let Some(probability) = spec.probability
            && !(0.0..=1.0).contains(&probability)
        {
            return Err(FaultError::Probability(probability));
        }
        let delay = match &spec.fault {
            FaultKind::Latency { delay } => parse_delay(delay)?,
            _ => Duration::ZERO,
        };
        let mut table = lock(&self.inner);
        table.next_id += 1;
        let id = table.next_id;
        table.faults.push(ActiveFault {
            id,
            remaining: spec.times,
            spec,
            matcher,
            delay,
            hits: 0,
        });
        Ok(id)
    }

    /// Removes every fault (and its counters).
    pub fn clear(&self) {
        lock(&self.inner).faults.clear();
    }

    /// Removes one fault; `false` when there is none with that id.
    pub fn remove(&self, id: u64) -> bool {
        let mut table = lock(&self.inner);
        let before = table.faults.len();
        table.faults.retain(|fault| fault.id != id);
        table.faults.len() != before
    }

    /// Every fault with its hit count, in the order they were added.
    pub fn list(&self) -> Vec<FaultStatus> {
        lock(&self.inner)
            .faults
            .iter()
            .map(|fault| FaultStatus {
                id: fault.id,
                spec: fault.spec.clone(),
                hits: fault.hits,
                remaining: fault.remaining,
            })
            .collect()
    }

    /// Decides what happens to a call. Latency faults add up; the first other fault that
    /// fires decides the failure. Each fault that fires counts a hit (and uses up one of
    /// its `times`).
    pub fn evaluate(&self, method: &str, path: &str) -> FaultOutcome {
        let mut outcome = FaultOutcome::default();
        let mut table = lock(&self.inner);
        for fault in &mut table.faults {
            let method_matches = fault
                .spec
                .method
                .as_deref()
                .is_none_or(|wanted| wanted == "*" || wanted.eq_ignore_ascii_case(method));
            if !method_matches || !fault.matcher.matches(path) || fault.remaining == Some(0) {
                continue;
            }
            let is_latency = matches!(fault.spec.fault, FaultKind::Latency { .. });
            if !is_latency && outcome.failure.is_some() {
                continue;
            }
            if let Some(probability) = fault.spec.probability
                && !rand::random_bool(probability)
            {
                continue;
            }
            fault.hits += 1;
            if let Some(remaining) = fault.remaining.as_mut() {
                *remaining -= 1;
            }
            outcome.hit_ids.push(fault.id);
            if is_latency {
                outcome.delay += fault.delay;
            } else {
                outcome.failure = Some(fault.spec.fault.clone());
            }
        }
        outcome
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// `*` → any run of characters, `?` → one character, everything else literal; anchored
/// at both ends, case-insensitive.
fn glob_to_regex(glob: &str) -> Result<regex::Regex, regex::Error> {
    let mut pattern = String::from("^");
    for character in glob.chars() {
        match character {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            other => pattern.push_str(&regex::escape(&other.to_string())),
        }
    }
    pattern.push('$');
    regex::RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .build()
}

fn parse_delay(text: &str) -> Result<Duration, FaultError> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|_| FaultError::Delay(text.to_owned()))?;
    Duration::try_from(parsed).map_err(|_| FaultError::Delay(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, fault: FaultKind) -> FaultSpec {
        FaultSpec {
            method: None,
            path: Some(path.to_owned()),
            path_regex: None,
            fault,
            probability: None,
            times: None,
        }
    }

    #[test]
    fn globs_match_whole_paths_case_insensitively() {
        let faults = Faults::new();
        faults
            .add(spec("/subscriptions/*/initiate", FaultKind::InternalError))
            .unwrap();
        assert_eq!(
            faults
                .evaluate("POST", "/SUBSCRIPTIONS/abc/resourceGroups/x/Initiate")
                .failure,
            Some(FaultKind::InternalError)
        );
        assert_eq!(
            faults
                .evaluate("POST", "/subscriptions/abc/initiate/x")
                .failure,
            None
        );
        assert_eq!(faults.list()[0].hits, 1);
    }

    #[test]
    fn next_n_calls_then_stop() {
        let faults = Faults::new();
        let mut throttle = spec(
            "*",
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
        );
        throttle.times = Some(2);
        throttle.method = Some("get".to_owned());
        faults.add(throttle).unwrap();
        assert_eq!(faults.evaluate("PUT", "/x").failure, None);
        assert!(faults.evaluate("GET", "/x").failure.is_some());
        assert!(faults.evaluate("GET", "/x").failure.is_some());
        assert_eq!(faults.evaluate("GET", "/x").failure, None);
        let status = &faults.list()[0];
        assert_eq!((status.hits, status.remaining), (2, Some(0)));
    }

    #[test]
    fn latency_adds_up_and_does_not_stop_a_failure() {
        let faults = Faults::new();
        faults
            .add(spec(
                "*",
                FaultKind::Latency {
                    delay: "150ms".to_owned(),
                },
            ))
            .unwrap();
        faults
            .add(spec(
                "*",
                FaultKind::Latency {
                    delay: "PT1S".to_owned(),
                },
            ))
            .unwrap();
        faults.add(spec("*", FaultKind::ConnectionReset)).unwrap();
        faults.add(spec("*", FaultKind::InternalError)).unwrap();
        let outcome = faults.evaluate("GET", "/ip");
        assert_eq!(outcome.delay, Duration::from_millis(1150));
        assert_eq!(outcome.failure, Some(FaultKind::ConnectionReset));
        assert_eq!(outcome.hit_ids, vec![1, 2, 3]);
        assert_eq!(faults.list()[3].hits, 0, "only the first failure fires");
    }

    #[test]
    fn probability_zero_never_fires_and_one_always_does() {
        let faults = Faults::new();
        let mut never = spec("*", FaultKind::Forbidden);
        never.probability = Some(0.0);
        faults.add(never).unwrap();
        let mut always = spec("*", FaultKind::ExpiredToken);
        always.probability = Some(1.0);
        faults.add(always).unwrap();
        for _ in 0..20 {
            assert_eq!(
                faults.evaluate("GET", "/").failure,
                Some(FaultKind::ExpiredToken)
            );
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let faults = Faults::new();
        let mut both = spec("*", FaultKind::InternalError);
        both.path_regex = Some(".*".to_owned());
        assert!(matches!(faults.add(both), Err(FaultError::PathChoice)));
        let mut bad_probability = spec("*", FaultKind::InternalError);
        bad_probability.probability = Some(1.5);
        assert!(matches!(
            faults.add(bad_probability),
            Err(FaultError::Probability(_))
        ));
        assert!(matches!(
            faults.add(spec(
                "*",
                FaultKind::Latency {
                    delay: "soon".to_owned()
                }
            )),
            Err(FaultError::Delay(_))
        ));
        let regex = FaultSpec {
            path: None,
            path_regex: Some("(".to_owned()),
            ..spec("*", FaultKind::InternalError)
        };
        assert!(matches!(faults.add(regex), Err(FaultError::Regex(_))));
    }

    #[test]
    fn specs_parse_from_json() {
        let parsed: FaultSpec = serde_json::from_str(
            r#"{"method":"GET","path":"/subscriptions/*","fault":{"kind":"throttle","retry_after_seconds":2},"times":3}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.fault,
            FaultKind::Throttle {
                retry_after_seconds: 2
            }
        );
        assert_eq!(parsed.times, Some(3));
        let reset: FaultSpec = serde_json::from_str(
            r#"{"path_regex":"token$","fault":{"kind":"connection_reset"},"probability":0.5}"#,
        )
        .unwrap();
        assert_eq!(reset.fault, FaultKind::ConnectionReset);
    }
}
