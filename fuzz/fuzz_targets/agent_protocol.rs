//! The agent's JSON-lines protocol: every line a client sends the agent (`Request`) and
//! every line the agent answers (`Response`), as `serde_json` reads them off the socket.
//!
//! Input: one or more lines, each read as a request and as a response. Checked beyond
//! "no panic": what was read writes back as one line (no raw newline, so framing holds)
//! and reads back equal, so a window registered with the agent is the window it keeps.

#![no_main]

use jit_agent::daemon::protocol::{MAX_MESSAGE_BYTES, Request, Response};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(line: &[u8]) {
    let Ok(message) = serde_json::from_slice::<T>(line) else {
        return;
    };
    let written = serde_json::to_vec(&message).expect("a message read writes back");
    assert!(!written.contains(&b'\n'), "one message, one line");
    let again: T = serde_json::from_slice(&written).expect("what is written reads back");
    assert_eq!(again, message);
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&byte| byte == b'\n').take(16) {
        if line.len() > MAX_MESSAGE_BYTES {
            continue;
        }
        round_trip::<Request>(line);
        round_trip::<Response>(line);
    }
});
