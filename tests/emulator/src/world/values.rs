//! Checks of single values that the world file and the ARM routes share: GUIDs, ISO-8601
//! durations and the bounds JIT puts on them, JIT source prefixes.

use std::net::Ipv4Addr;

/// Whether `text` is a GUID (`8-4-4-4-12` hex digits), as ARM requires of subscription ids.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

/// Parses an ISO-8601 duration (`PT3H`, `PT0.5H`, `P1D`, days counted as 24 hours).
pub fn parse_iso_duration(text: &str) -> Option<jiff::SignedDuration> {
    if !text.starts_with(['P', 'p']) {
        return None;
    }
    let span: jiff::Span = text.parse().ok()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()
}

/// The shortest and longest `maxRequestAccessDuration` JIT accepts.
pub const MIN_MAX_DURATION: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// See [`MIN_MAX_DURATION`].
pub const MAX_MAX_DURATION: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Whether `text` is `*`, an IPv4 address or an IPv4 CIDR: what JIT accepts as a source.
pub fn is_source_prefix(text: &str) -> bool {
    text == "*" || text.parse::<Ipv4Addr>().is_ok() || text.parse::<ipnet::Ipv4Net>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_parse_with_days_as_24_hours() {
        assert_eq!(
            parse_iso_duration("PT3H"),
            Some(jiff::SignedDuration::from_hours(3))
        );
        assert_eq!(
            parse_iso_duration("PT0.5H"),
            Some(jiff::SignedDuration::from_mins(30))
        );
        assert_eq!(
            parse_iso_duration("P1D"),
            Some(jiff::SignedDuration::from_hours(24))
        );
        assert_eq!(parse_iso_duration("3h"), None);
        assert_eq!(parse_iso_duration("PT"), None);
        assert_eq!(parse_iso_duration(""), None);
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34"));
        assert!(!is_guid("3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b3"));
        assert!(!is_guid("subscriptions"));
    }
}
