//! Per-identity request rate limits (GCRA, via governor), keyed on the identity of the TLS
//! client certificate — never on the IP, since many partners sit behind one NAT and one
//! partner's POS fleet behind many addresses. Checked before any database work, so a refused
//! request costs almost nothing and writes nothing.
//!
//! In memory, per `serve` instance: N instances behind a balancer allow up to N times the rate.
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::time::Duration;

pub use crate::config::rate_limit::{DEFAULT_BURST, DEFAULT_PER_SECOND};

pub struct IdentityLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl IdentityLimiter {
    /// `per_second` requests per second, with `burst` allowed at once. Zeros are raised to 1.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        IdentityLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `identity`; over the limit, how long to wait (whole seconds,
    /// at least 1, as `Retry-After` needs).
    pub fn check(&self, identity: &str) -> Result<(), u64> {
        match self.limiter.check_key(&identity.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.clock.now());
                // Rounded up: retrying after a rounded-down wait would be refused again.
                Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
            }
        }
    }

    /// Forgets identities whose bucket is full again, so memory stays bounded by recent callers.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_identity() {
        let l = IdentityLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(l.check("urn:alliance:partner:A").is_ok());
        }
        let wait = l.check("urn:alliance:partner:A").unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(
            l.check("urn:alliance:partner:B").is_ok(),
            "another identity has its own bucket"
        );
    }
}
