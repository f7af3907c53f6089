//! When to tell the user something about a window, measured on Azure's clock.
//!
//! A window's end (`endTimeUtc`) is Azure's time. A laptop whose clock is five minutes
//! off would warn five minutes early or late if it compared that with its own clock, so
//! the agent keeps `offset = azure_time - local_time` from the latest ARM `Date` header
//! (a registration carries the one seen by the CLI; every refresh brings a new one) and
//! computes `azure_now = local_now + offset`. On the emulator the virtual clock shows in
//! that header, which is how tests move time.
//!
//! These are pure functions over the tracked windows; the agent's scheduler task sleeps
//! until [`next_deadline`] (capped, so a suspended laptop or a new offset is noticed
//! soon after) and then fires [`due_events`].

use jiff::{SignedDuration, Timestamp};

use super::store::TrackedWindow;

/// What is due for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Within the lead time of the end: say it ends soon.
    EndsSoon,
    /// At or past the end: say it ended, and stop tracking it.
    Ended,
}

/// Azure's clock, as far as the agent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureClock {
    offset: SignedDuration,
}

impl AzureClock {
    /// A clock that runs `offset` ahead of the local one (negative: behind).
    pub fn new(offset: SignedDuration) -> Self {
        Self { offset }
    }

    /// Azure's clock minus the local one.
    pub fn offset(&self) -> SignedDuration {
        self.offset
    }

    /// Azure's time at local time `local_now`.
    pub fn azure_time(&self, local_now: Timestamp) -> Timestamp {
        local_now.checked_add(self.offset).unwrap_or(local_now)
    }

    /// Azure's time now.
    pub fn now(&self) -> Timestamp {
        self.azure_time(Timestamp::now())
    }
}

/// What is due for each window at `azure_now`, given `lead` before the end for
/// "ends soon". A window already past its end gets only [`Due::Ended`].
pub fn due_events(
    windows: &[TrackedWindow],
    azure_now: Timestamp,
    lead: SignedDuration,
) -> Vec<(String, Due)> {
    windows
        .iter()
        .filter_map(|tracked| {
            let ends_at = tracked.window.ends_at;
            if azure_now >= ends_at {
                Some((tracked.window.vm_id.clone(), Due::Ended))
            } else if !tracked.ends_soon_notified && azure_now >= warn_at(ends_at, lead) {
                Some((tracked.window.vm_id.clone(), Due::EndsSoon))
            } else {
                None
            }
        })
        .collect()
}

/// The earliest Azure time at which something becomes due, if anything is pending.
pub fn next_deadline(windows: &[TrackedWindow], lead: SignedDuration) -> Option<Timestamp> {
    windows
        .iter()
        .map(|tracked| {
            if tracked.ends_soon_notified {
                tracked.window.ends_at
            } else {
                warn_at(tracked.window.ends_at, lead)
            }
        })
        .min()
}

/// Whether a window that has `time_left` when it opens is too short for a separate
/// "ends soon" notification (the "opened" one already says when it ends).
pub fn too_short_for_warning(time_left: SignedDuration, lead: SignedDuration) -> bool {
    time_left <= lead
}

fn warn_at(ends_at: Timestamp, lead: SignedDuration) -> Timestamp {
    ends_at.checked_sub(lead).unwrap_or(ends_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::{AccessWindow, PortStatus, WindowPort};

    fn tracked(vm: &str, ends_at: Timestamp, ends_soon_notified: bool) -> TrackedWindow {
        TrackedWindow {
            window: AccessWindow {
                vm_id: vm.into(),
                vm_name: vm.into(),
                resource_group: "rg".into(),
                subscription_id: "s".into(),
                policy_id: "p".into(),
                ports: vec![WindowPort {
                    number: 22,
                    mapped_port: None,
                    status: PortStatus::Initiated,
                }],
                source_address_prefix: "*".into(),
                requested_at: Timestamp::UNIX_EPOCH,
                ends_at,
                server_clock_offset_at_registration: SignedDuration::ZERO,
                justification: None,
                connect_address: None,
                requestor: None,
            },
            ends_soon_notified,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn events_follow_the_lead_and_the_end() {
        let lead = SignedDuration::from_mins(5);
        let windows = vec![tracked("a", at(3600), false)];
        assert!(due_events(&windows, at(3000), lead).is_empty());
        assert_eq!(
            due_events(&windows, at(3300), lead),
            vec![("a".to_owned(), Due::EndsSoon)]
        );
        assert_eq!(
            due_events(&windows, at(3600), lead),
            vec![("a".to_owned(), Due::Ended)]
        );
        let warned = vec![tracked("a", at(3600), true)];
        assert!(due_events(&warned, at(3400), lead).is_empty());
    }

    #[test]
    fn the_next_deadline_is_the_earliest_pending_one() {
        let lead = SignedDuration::from_mins(5);
        let windows = vec![tracked("a", at(3600), false), tracked("b", at(3400), true)];
        assert_eq!(next_deadline(&windows, lead), Some(at(3300)));
        assert_eq!(next_deadline(&[], lead), None);
    }

    #[test]
    fn the_offset_moves_azure_time() {
        let clock = AzureClock::new(SignedDuration::from_mins(-10));
        assert_eq!(clock.azure_time(at(3600)), at(3000));
    }
}
