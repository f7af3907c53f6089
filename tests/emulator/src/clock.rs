//! The emulator's virtual clock.
//!
//! Time in the emulator runs at real speed from an adjustable offset. Tests and demos
//! move it forward (`POST {admin_endpoint}/clock {"advance":"PT1H"}`) to reach the end of
//! an access window without waiting for it. Every timestamp the emulator writes (request
//! start and end times, token expiry, the HTTP `Date` header) comes from this clock, so a
//! client that measures time against Azure's `Date` header sees the jump as Azure would.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// A clock that runs at real speed from an adjustable offset. Cheap to clone; clones share
/// the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_nanoseconds: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that starts at real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_nanos(self.offset_nanoseconds.load(Ordering::SeqCst));
        Timestamp::now()
            .saturating_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let nanos = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.offset_nanoseconds.fetch_add(nanos, Ordering::SeqCst);
    }

    /// How far the virtual clock is ahead of real time.
    pub fn offset(&self) -> SignedDuration {
        SignedDuration::from_nanos(self.offset_nanoseconds.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_by_the_given_amount() {
        let clock = Clock::new();
        let before = clock.now();
        clock.advance(SignedDuration::from_hours(1));
        let gained = clock.now().duration_since(before);
        assert!(gained >= SignedDuration::from_hours(1), "gained {gained:?}");
        assert!(gained < SignedDuration::from_hours(1) + SignedDuration::from_secs(5));
        assert_eq!(clock.offset(), SignedDuration::from_hours(1));
    }

    #[test]
    fn clones_share_the_offset() {
        let clock = Clock::new();
        let clone = clock.clone();
        clone.advance(SignedDuration::from_mins(30));
        assert_eq!(clock.offset(), SignedDuration::from_mins(30));
    }
}
