//! Failed ARM answers: a status, the `Retry-After` family of headers and a body, read the
//! way the ARM client reads them (`ArmError::from_response`, `CloudError::parse`,
//! `parse_authorization_failure`, `retry_after`, `parse_http_date`), then turned into
//! the message, hint and retry decision a person or the retry loop sees.
//!
//! Input: two bytes of status, then the header value up to the first newline, then the
//! body. Checked beyond "no panic": the message and hint are never empty, and a wait
//! the server asks for never makes the retry loop wait beyond its total budget.

#![no_main]

use std::time::Duration;

use jit_agent::azure::arm::retry::{decide, retry_after};
use jit_agent::azure::arm::{
    ArmError, AttemptOutcome, Idempotency, RetryDecision, RetryOptions,
    parse_authorization_failure, parse_http_date,
};
use jit_agent::azure::models::CloudError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [high, low, rest @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]);
    let (header, body) = match rest.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (&rest[..0], rest),
    };
    let header = String::from_utf8_lossy(header);

    let _ = parse_http_date(&header);
    let now = jiff::Timestamp::UNIX_EPOCH;
    let waits = ["x-ms-retry-after-ms", "retry-after-ms", "retry-after"]
        .map(|name| retry_after(|asked| (asked == name).then_some(header.as_ref()), now));

    if let Some(parsed) = CloudError::parse(body) {
        let _ = parsed.code();
        let _ = parsed.full_message();
    }
    for wait in waits {
        let error = ArmError::from_response(status, wait, body);
        assert!(!error.to_string().trim().is_empty(), "{error:?}");
        assert!(!error.hint().trim().is_empty(), "{error:?}");
        let _ = error.kind();
        let _ = error.code();
        if let ArmError::Forbidden { message, .. } = &error {
            let _ = parse_authorization_failure(message);
        }

        let options = RetryOptions::default();
        for idempotency in [Idempotency::Idempotent, Idempotency::NonIdempotent] {
            let outcome = AttemptOutcome::Response {
                status,
                retry_after: wait,
            };
            if let RetryDecision::Retry { delay, .. } =
                decide(&options, idempotency, outcome, 0, Duration::ZERO, 0.5)
            {
                assert!(delay <= options.max_total_wait, "{delay:?}");
            }
        }
    }
    let _ = parse_authorization_failure(&String::from_utf8_lossy(body));
});
