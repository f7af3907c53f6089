//! How times, durations and shell commands are written for people, in one place, so
//! every command says "1h30m" and "14:32 CET" the same way.

use jiff::{SignedDuration, Timestamp, tz::TimeZone};

/// Formats a duration the way people write it: `3h`, `1h30m`, `45m`, `20s`.
pub fn format_duration(duration: SignedDuration) -> String {
    let total = duration.as_secs().max(0);
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

/// Time left, to the minute (rounded down): `1h29m`, `45m`, `<1m`.
pub fn format_time_left(left: SignedDuration) -> String {
    let minutes = left.as_secs().max(0) / 60;
    match (minutes / 60, minutes % 60) {
        (0, 0) => "<1m".to_owned(),
        (0, minutes) => format!("{minutes}m"),
        (hours, 0) => format!("{hours}h"),
        (hours, minutes) => format!("{hours}h{minutes}m"),
    }
}

/// A timestamp as RFC 3339 UTC, to the second: `2026-05-01T10:00:00Z`.
pub fn format_time(timestamp: Timestamp) -> String {
    format!("{timestamp:.0}")
}

/// `14:32 CET (in 2h59m)`: an end on Azure's clock, in local time, with the time left.
pub fn describe_end(end: Timestamp, now: Timestamp) -> String {
    let local = end.to_zoned_datetime(TimeZone::system());
    let left = end.duration_since(now);
    format!(
        "{} (in {})",
        local.strftime("%H:%M %Z"),
        format_duration(if left.is_negative() {
            SignedDuration::ZERO
        } else {
            left
        })
    )
}

/// "port 22" or "ports 22, 2222".
pub fn ports_phrase(ports: &[u16]) -> String {
    let numbers: Vec<String> = ports.iter().map(u16::to_string).collect();
    match numbers.as_slice() {
        [one] => format!("port {one}"),
        _ => format!("ports {}", numbers.join(", ")),
    }
}

/// One argument as a POSIX shell would need it written to mean itself: bare when it is
/// made of safe characters, else in single quotes.
pub fn shell_quote(argument: &str) -> String {
    let safe = !argument.is_empty()
        && argument
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if safe {
        argument.to_owned()
    } else {
        format!("'{}'", argument.replace('\'', r"'\''"))
    }
}

/// A command line a person can paste into a shell.
pub fn shell_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words
        .into_iter()
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_time_left_read_like_people_write_them() {
        assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h30m");
        assert_eq!(format_duration(SignedDuration::from_secs(0)), "0s");
        assert_eq!(format_time_left(SignedDuration::from_secs(59)), "<1m");
        assert_eq!(format_time_left(SignedDuration::from_mins(61)), "1h1m");
    }

    #[test]
    fn one_port_or_several() {
        assert_eq!(ports_phrase(&[22]), "port 22");
        assert_eq!(ports_phrase(&[44489, 39307]), "ports 44489, 39307");
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        assert_eq!(
            shell_words(["jit", "connect", "web-01", "--justification", "jit demo"]),
            "jit connect web-01 --justification 'jit demo'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
