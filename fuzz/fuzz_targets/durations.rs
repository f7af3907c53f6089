//! Durations as people type them (`--duration`, `--timeout`, config values) through the
//! CLI's `parse_duration`, and as Azure writes them (`maxRequestAccessDuration`) through
//! the library's ISO-8601 reader.
//!
//! Checked beyond "no panic": an accepted duration is positive (CLI) or not negative
//! (Azure), and one that `jit` itself writes back (ISO-8601 for a policy, `1h30m` for
//! `jit config show`) reads back as the same duration.

#![no_main]

use jit::printer::format::format_duration;
use jit::settings::parse_duration;
use jit_agent::azure::models::{IsoDuration, parse_duration as parse_iso_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(duration) = parse_duration(text, "--duration") {
        assert!(duration.is_positive(), "{text:?} read as {duration:?}");
        // What `jit` writes (a policy's maximum, an initiate's duration) reads back.
        let written = IsoDuration::from_duration(duration);
        assert_eq!(
            written.to_duration().ok(),
            Some(duration),
            "{text:?} -> {written}"
        );
        // `jit config show` prints whole seconds; those read back.
        if duration.subsec_nanos() == 0 {
            let shown = format_duration(duration);
            assert_eq!(
                parse_duration(&shown, "--duration").ok(),
                Some(duration),
                "{text:?} -> {shown}"
            );
        }
    }

    if let Ok(duration) = parse_iso_duration(text) {
        assert!(!duration.is_negative(), "{text:?} read as {duration:?}");
    }
    // A policy's maximum as Azure sent it: kept verbatim, parsed on demand.
    let _ = IsoDuration(text.to_owned()).to_duration();
});
