//! The auth layer's clock. Token lifetimes are decided against it, so
//! tests move it forward instead of waiting fifteen minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

#[derive(Clone, Debug)]
pub enum Clock {
    System,
    /// Milliseconds since the Unix epoch, moved only by [`Clock::advance`].
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that stands at `start` until it is moved.
    pub fn manual(start: OffsetDateTime) -> Clock {
        let millis = (start.unix_timestamp_nanos() / 1_000_000) as i64;
        Clock::Manual(Arc::new(AtomicI64::new(millis)))
    }

    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Manual(millis) => {
                let nanos = i128::from(millis.load(Ordering::SeqCst)) * 1_000_000;
                OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        }
    }

    /// Moves a manual clock on; the system clock moves by itself.
    pub fn advance(&self, by: time::Duration) {
        if let Clock::Manual(millis) = self {
            millis.fetch_add(by.whole_milliseconds() as i64, Ordering::SeqCst);
        }
    }
}

/// A time as the account store keeps it: UTC, to the millisecond, in the
/// resource API's canonical form.
pub use kumo_db::query::canonical_datetime as stamp;

/// A stored time (`stamp`'s form) read back.
pub fn parse_stamp(stored: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(stored, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_stamps_round_trip() {
        let clock = Clock::manual(datetime!(2026-11-21 12:00:00.123 UTC));
        assert_eq!(stamp(clock.now()), "2026-11-21T12:00:00.123Z");
        clock.advance(time::Duration::minutes(15));
        assert_eq!(stamp(clock.now()), "2026-11-21T12:15:00.123Z");
        assert_eq!(parse_stamp(&stamp(clock.now())), Some(clock.now()));
        assert_eq!(parse_stamp("not a time"), None);
    }
}
