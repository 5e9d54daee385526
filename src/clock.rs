//! The time, passed in rather than read from the wall where it decides something: a business
//! day, a member day, a closed day, a key's overlap, a token's expiry. The gateway runs on
//! [`SystemClock`]; tests and rehearsals run on a [`SettableClock`], set to any instant (a day's
//! end, a month end, a year end) and moved on by hand instead of waited for.
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The wall clock moved by an offset that can be set: time goes on at its usual pace from
/// wherever it was set to, so timeouts and rate limits still behave.
#[derive(Debug, Default)]
pub struct SettableClock {
    offset_us: AtomicI64,
}

impl SettableClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// From now on the clock reads `at` (and goes on from there).
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_microseconds().unwrap_or(0);
        self.offset_us.store(offset, Ordering::SeqCst);
    }

    /// Moves the clock on by `by` (back, if negative).
    pub fn advance(&self, by: TimeDelta) {
        let by = by.num_microseconds().unwrap_or(0);
        self.offset_us.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for SettableClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::microseconds(self.offset_us.load(Ordering::SeqCst));
        Utc::now()
            .checked_add_signed(offset)
            .unwrap_or_else(Utc::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settable_clock_reads_what_it_was_set_to_and_moves_on_by_hand() {
        let clock = SettableClock::new();
        let new_year = DateTime::parse_from_rfc3339("2027-12-31T15:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(new_year);
        let read = clock.now();
        assert!(
            read >= new_year && read - new_year < TimeDelta::seconds(5),
            "{read}"
        );
        clock.advance(TimeDelta::days(1));
        assert!(clock.now() - new_year >= TimeDelta::days(1));
        assert!((SystemClock.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
