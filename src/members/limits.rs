//! Verify rate limits per partner (contract section 5): requests per minute, and distinct
//! members per business day. They bound how fast a partner could enumerate card numbers.
//!
//! Kept in memory, per `serve` instance: with N instances behind a balancer a partner gets up
//! to N times the limit. Fixed windows: a minute is a wall-clock minute, a day the alliance's
//! business day.
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The caller should wait this long before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit reached; retry after {retry_after_s} s")]
pub struct RateLimited {
    pub retry_after_s: u64,
    pub what: Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    RequestsPerMinute,
    MembersPerDay,
}

#[derive(Default)]
struct Window {
    minute: i64,
    requests: u32,
    day: Option<NaiveDate>,
    members: HashSet<i64>,
    not_found_minute: i64,
    not_found: u32,
}

pub struct VerifyLimits {
    requests_per_minute: u32,
    members_per_day: u32,
    not_found_burst: u32,
    windows: Mutex<HashMap<String, Window>>,
}

impl VerifyLimits {
    pub fn new(requests_per_minute: u32, members_per_day: u32, not_found_burst: u32) -> Self {
        VerifyLimits {
            requests_per_minute,
            members_per_day,
            not_found_burst,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn with_window<T>(&self, partner: &str, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        f(windows.entry(partner.to_owned()).or_default())
    }

    /// Counts one verify request at `now_unix_s`.
    pub fn request(&self, partner: &str, now_unix_s: i64) -> Result<(), RateLimited> {
        let minute = now_unix_s.div_euclid(60);
        let limit = self.requests_per_minute;
        self.with_window(partner, |w| {
            if w.minute != minute {
                w.minute = minute;
                w.requests = 0;
            }
            if w.requests >= limit {
                return Err(RateLimited {
                    retry_after_s: (60 - now_unix_s.rem_euclid(60)).max(1) as u64,
                    what: Limit::RequestsPerMinute,
                });
            }
            w.requests += 1;
            Ok(())
        })
    }

    /// Counts a verify that found no member. True exactly once per minute and partner: when
    /// the count reaches the burst threshold (the caller records a metric and a warning).
    pub fn not_found(&self, partner: &str, now_unix_s: i64) -> bool {
        let minute = now_unix_s.div_euclid(60);
        let burst = self.not_found_burst;
        self.with_window(partner, |w| {
            if w.not_found_minute != minute {
                w.not_found_minute = minute;
                w.not_found = 0;
            }
            w.not_found = w.not_found.saturating_add(1);
            w.not_found == burst
        })
    }

    /// Records that `member_id` was looked up on `day`; refuses a new member past the limit.
    /// A member already seen today is always allowed again.
    pub fn member(
        &self,
        partner: &str,
        day: NaiveDate,
        member_id: i64,
        seconds_to_next_day: u64,
    ) -> Result<(), RateLimited> {
        let limit = self.members_per_day as usize;
        self.with_window(partner, |w| {
            if w.day != Some(day) {
                w.day = Some(day);
                w.members.clear();
            }
            if w.members.contains(&member_id) {
                return Ok(());
            }
            if w.members.len() >= limit {
                return Err(RateLimited {
                    retry_after_s: seconds_to_next_day.max(1),
                    what: Limit::MembersPerDay,
                });
            }
            w.members.insert(member_id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_partner_and_minute() {
        let l = VerifyLimits::new(2, 10, 20);
        assert!(l.request("A", 120).is_ok());
        assert!(l.request("A", 121).is_ok());
        assert_eq!(l.request("A", 150).unwrap_err().retry_after_s, 30);
        assert!(
            l.request("B", 150).is_ok(),
            "another partner has its own window"
        );
        assert!(l.request("A", 180).is_ok(), "a new minute starts afresh");
    }

    #[test]
    fn a_not_found_burst_is_reported_once_per_minute() {
        let l = VerifyLimits::new(100, 10, 3);
        assert!(!l.not_found("A", 60));
        assert!(!l.not_found("A", 61));
        assert!(l.not_found("A", 62), "the third 404 in a minute is a burst");
        assert!(!l.not_found("A", 63), "reported once per minute");
        assert!(!l.not_found("B", 63));
        assert!(!l.not_found("A", 120), "a new minute starts afresh");
    }

    #[test]
    fn distinct_members_are_counted_per_day() {
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let l = VerifyLimits::new(100, 2, 20);
        assert!(l.member("A", d1, 1, 10).is_ok());
        assert!(l.member("A", d1, 2, 10).is_ok());
        assert!(
            l.member("A", d1, 1, 10).is_ok(),
            "a member seen today is allowed again"
        );
        assert_eq!(
            l.member("A", d1, 3, 10).unwrap_err().what,
            Limit::MembersPerDay
        );
        assert!(l.member("A", d2, 3, 10).is_ok());
    }
}
