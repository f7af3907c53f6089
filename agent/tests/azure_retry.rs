//! The retry rules as pure decisions: what is repeated, after how long, and what never is.

use std::time::Duration;

use azure_core::http::Method;
use jit_agent::azure::arm::retry::{backoff_delay, decide, retry_after};
use jit_agent::azure::arm::{
    AttemptOutcome, Idempotency, RetryDecision, RetryOptions, RetryReason,
};

const GET: Idempotency = Idempotency::Idempotent;
const POST: Idempotency = Idempotency::NonIdempotent;

fn response(status: u16, retry_after: Option<u64>) -> AttemptOutcome {
    AttemptOutcome::Response {
        status,
        retry_after: retry_after.map(Duration::from_secs),
    }
}

fn first(idempotency: Idempotency, outcome: AttemptOutcome) -> RetryDecision {
    decide(
        &RetryOptions::default(),
        idempotency,
        outcome,
        0,
        Duration::ZERO,
        0.5,
    )
}

#[test]
fn throttling_is_retried_after_exactly_the_servers_wait_even_for_post() {
    for idempotency in [GET, POST] {
        assert_eq!(
            first(idempotency, response(429, Some(3))),
            RetryDecision::Retry {
                delay: Duration::from_secs(3),
                reason: RetryReason::Throttled { status: 429 }
            }
        );
        assert_eq!(
            first(idempotency, response(503, Some(2))),
            RetryDecision::Retry {
                delay: Duration::from_secs(2),
                reason: RetryReason::Throttled { status: 503 }
            },
            "503 with Retry-After was not processed"
        );
    }
}

#[test]
fn throttling_without_a_wait_backs_off() {
    assert_eq!(
        first(POST, response(429, None)),
        RetryDecision::Retry {
            delay: Duration::from_millis(500),
            reason: RetryReason::Throttled { status: 429 }
        }
    );
}

#[test]
fn server_errors_are_retried_only_when_repeating_is_harmless() {
    for status in [500, 502, 503, 504] {
        assert!(
            matches!(
                first(GET, response(status, None)),
                RetryDecision::Retry { reason: RetryReason::ServerError { status: s }, .. } if s == status
            ),
            "GET {status}"
        );
        assert_eq!(
            first(POST, response(status, None)),
            RetryDecision::Stop,
            "a POST answered {status} may have been applied; it must not be repeated"
        );
    }
    assert!(
        matches!(
            first(POST, response(408, None)),
            RetryDecision::Retry { .. }
        ),
        "408: the server never took the request"
    );
}

#[test]
fn connection_failures() {
    assert!(
        matches!(
            first(POST, AttemptOutcome::NotSent),
            RetryDecision::Retry {
                reason: RetryReason::ConnectFailed,
                ..
            }
        ),
        "nothing was sent, so even a POST may be repeated"
    );
    assert!(matches!(
        first(GET, AttemptOutcome::NoResponse),
        RetryDecision::Retry {
            reason: RetryReason::ConnectionLost,
            ..
        }
    ));
    assert_eq!(
        first(POST, AttemptOutcome::NoResponse),
        RetryDecision::Stop,
        "sent without an answer is ambiguous: never re-POST"
    );
}

#[test]
fn client_errors_and_successes_stop() {
    for status in [200, 201, 202, 204, 400, 401, 403, 404, 409, 412] {
        assert_eq!(
            first(GET, response(status, Some(1))),
            RetryDecision::Stop,
            "{status}"
        );
    }
}

#[test]
fn retries_and_waiting_are_bounded() {
    let options = RetryOptions::default();
    assert_eq!(
        decide(
            &options,
            GET,
            response(500, None),
            options.max_retries,
            Duration::ZERO,
            0.5
        ),
        RetryDecision::Stop,
        "no retry beyond max_retries"
    );
    assert_eq!(
        decide(
            &options,
            GET,
            response(429, Some(5)),
            1,
            Duration::from_secs(58),
            0.5
        ),
        RetryDecision::Stop,
        "a wait the budget cannot cover is not started"
    );
    assert_eq!(
        decide(
            &options,
            GET,
            response(429, Some(120)),
            0,
            Duration::ZERO,
            0.5
        ),
        RetryDecision::Stop,
        "Retry-After longer than the whole budget: report it instead of waiting"
    );
    assert!(matches!(
        decide(
            &options,
            GET,
            response(429, Some(5)),
            1,
            Duration::from_secs(55),
            0.5
        ),
        RetryDecision::Retry { .. }
    ));
    assert_eq!(
        decide(
            &RetryOptions::none(),
            GET,
            response(503, Some(1)),
            0,
            Duration::ZERO,
            0.5
        ),
        RetryDecision::Stop
    );
}

#[test]
fn backoff_doubles_is_capped_and_jittered() {
    let options = RetryOptions::default();
    let middle: Vec<u128> = (0..7)
        .map(|retry| backoff_delay(&options, retry, 0.5).as_millis())
        .collect();
    assert_eq!(middle, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert_eq!(backoff_delay(&options, 0, 0.0), Duration::from_millis(400));
    assert_eq!(backoff_delay(&options, 0, 1.0), Duration::from_millis(600));
    assert_eq!(
        backoff_delay(&options, 40, 0.5),
        Duration::from_secs(10),
        "no overflow"
    );
    assert_eq!(
        backoff_delay(&options, 0, f64::NAN),
        Duration::from_millis(500)
    );
}

#[test]
fn retry_after_headers_in_order_of_precedence() {
    let now: jiff::Timestamp = "2026-11-28T10:00:00Z".parse().expect("timestamp");
    let headers = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| *value)
        }
    };
    assert_eq!(
        retry_after(
            headers(&[
                ("x-ms-retry-after-ms", "250"),
                ("retry-after-ms", "900"),
                ("retry-after", "7")
            ]),
            now
        ),
        Some(Duration::from_millis(250))
    );
    assert_eq!(
        retry_after(
            headers(&[("retry-after-ms", "900"), ("retry-after", "7")]),
            now
        ),
        Some(Duration::from_millis(900))
    );
    assert_eq!(
        retry_after(headers(&[("retry-after", "7")]), now),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        retry_after(
            headers(&[("retry-after", "Sat, 28 Nov 2026 10:00:30 GMT")]),
            now
        ),
        Some(Duration::from_secs(30)),
        "an HTTP date counts from now"
    );
    assert_eq!(
        retry_after(
            headers(&[("retry-after", "Sat, 28 Nov 2026 09:00:00 GMT")]),
            now
        ),
        Some(Duration::ZERO),
        "a date in the past means now"
    );
    assert_eq!(retry_after(headers(&[("retry-after", "soon")]), now), None);
    assert_eq!(retry_after(headers(&[]), now), None);
}

#[test]
fn idempotency_follows_the_method() {
    assert_eq!(Idempotency::of_method(Method::Get), Idempotency::Idempotent);
    assert_eq!(Idempotency::of_method(Method::Put), Idempotency::Idempotent);
    assert_eq!(
        Idempotency::of_method(Method::Delete),
        Idempotency::Idempotent
    );
    assert_eq!(
        Idempotency::of_method(Method::Post),
        Idempotency::NonIdempotent
    );
    assert_eq!(
        Idempotency::of_method(Method::Patch),
        Idempotency::NonIdempotent
    );
}
