//! Durations as people type them (`--duration`, `--timeout`, config values) through the
//! CLI's `parse_duration`, over generated values: every way of writing the same length
//! reads as that length, what `jit config show` prints reads back as what was
//! configured, and zero or negative lengths are refused with the value named.

use jiff::SignedDuration;
use jit::printer::format::format_duration;
use jit::settings::parse_duration;
use proptest::prelude::*;

/// Up to ten years, in whole seconds (what the CLI prints).
fn whole_seconds() -> impl Strategy<Value = i64> {
    1i64..(10 * 366 * 24 * 3600)
}

proptest! {
    // A failure prints its minimal input; a bug found this way gets a unit test of its
    // own next to the code, so no regression files are written here.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn what_config_show_prints_reads_back_as_configured(seconds in whole_seconds()) {
        let duration = SignedDuration::from_secs(seconds);
        let shown = format_duration(duration);
        prop_assert_eq!(parse_duration(&shown, "duration").ok(), Some(duration), "{}", shown);
    }

    #[test]
    fn every_spelling_of_a_length_reads_as_that_length(
        hours in 0i64..1000,
        minutes in 0i64..60,
        seconds in 0i64..60,
    ) {
        let total = hours * 3600 + minutes * 60 + seconds;
        prop_assume!(total > 0);
        let expected = Some(SignedDuration::from_secs(total));
        for text in [
            format!("{hours}h{minutes}m{seconds}s"),
            format!("{hours}h {minutes}m {seconds}s"),
            format!("{hours} hours {minutes} minutes {seconds} seconds"),
            format!("PT{hours}H{minutes}M{seconds}S"),
            format!("  PT{total}S  "),
            format!("{total}s"),
        ] {
            prop_assert_eq!(parse_duration(&text, "--duration").ok(), expected, "{}", text);
        }
    }

    #[test]
    fn fractional_iso_hours_read_as_minutes(hours in 0i64..100, tenths in 1i64..10) {
        let text = format!("PT{hours}.{tenths}H");
        prop_assert_eq!(
            parse_duration(&text, "--duration").ok(),
            Some(SignedDuration::from_secs(hours * 3600 + tenths * 360)),
            "{}", text
        );
    }

    #[test]
    fn zero_and_negative_lengths_are_refused_naming_the_value(seconds in 0i64..100_000) {
        for text in [format!("-{seconds}s"), format!("-PT{seconds}S"), "0s".to_owned(), "PT0S".to_owned()] {
            let error = parse_duration(&text, "--duration").expect_err("not a length");
            let message = error.to_string();
            prop_assert!(message.contains("--duration"), "{}", message);
            prop_assert!(message.contains(&text), "{}", message);
        }
    }
}
