//! Throttling of wrong API tokens per client address, so that the bearer token of `/api/v1`
//! cannot be guessed at full speed (300 wrong tokens went through in 0.06 s before).
//!
//! Failures are counted with `governor` (GCRA: `api.max_failures_per_minute` as a burst,
//! refilled evenly over the minute). An address that has used up its allowance is refused
//! with 429 for every API call, whatever its token, until the allowance refills: were a right
//! token still answered 200 while wrong ones get 429, the difference would tell a guesser when
//! it hit, at any speed. Right tokens never use the allowance up, so a client with the token is
//! only refused while its own address (or a NAT it shares) keeps sending wrong ones, and then
//! for 60/N seconds after the last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The failure allowance of every client address seen failing.
pub struct FailureThrottle {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses past their allowance, and until when.
    refused: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
    max_addresses: usize,
}

impl FailureThrottle {
    /// `per_minute` failures per address; at most `max_addresses` addresses remembered.
    pub fn new(per_minute: NonZeroU32, max_addresses: usize) -> Self {
        Self {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            refused: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
            max_addresses,
        }
    }

    /// How long `addr` is still refused, if it is.
    pub fn refused_for(&self, addr: IpAddr) -> Option<Duration> {
        let key = key(addr);
        let mut refused = self.refused.lock().expect("throttle lock");
        let until = *refused.get(&key)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            refused.remove(&key);
            return None;
        }
        Some(left)
    }

    /// Counts a wrong token from `addr`; how long the address is refused from now on when this
    /// one was past its allowance.
    pub fn failed(&self, addr: IpAddr) -> Option<Duration> {
        let key = key(addr);
        if self.failures.len() >= self.max_addresses {
            // Forget addresses whose allowance is full again; they would start afresh anyway.
            self.failures.retain_recent();
            self.failures.shrink_to_fit();
            self.refused
                .lock()
                .expect("throttle lock")
                .retain(|_, until| *until > Instant::now());
        }
        if self.failures.len() >= self.max_addresses {
            // Every slot belongs to an address that failed within the last minute: a spread-out
            // attack. A new address is refused without being remembered, which keeps the memory
            // bounded and the guessing slow; it is not locked out for its right token.
            return Some(Duration::from_secs(60));
        }
        match self.failures.check_key(&key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                self.refused
                    .lock()
                    .expect("throttle lock")
                    .insert(key, Instant::now() + wait);
                Some(wait)
            }
        }
    }
}

/// The address counted: IPv4 as is (also when mapped into IPv6), IPv6 by its /64, since one
/// host commonly has a whole /64 to pick addresses from.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_refused_after_its_allowance_and_others_are_not() {
        let throttle = FailureThrottle::new(NonZeroU32::new(3).unwrap(), 100);
        for _ in 0..3 {
            assert_eq!(throttle.failed(ip("10.0.0.1")), None);
        }
        assert!(throttle.refused_for(ip("10.0.0.1")).is_none());
        let wait = throttle.failed(ip("10.0.0.1")).expect("past the allowance");
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20));
        assert!(throttle.refused_for(ip("10.0.0.1")).is_some());
        assert!(throttle.refused_for(ip("10.0.0.2")).is_none());
        assert_eq!(throttle.failed(ip("10.0.0.2")), None);
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_an_allowance() {
        let throttle = FailureThrottle::new(NonZeroU32::new(1).unwrap(), 100);
        assert_eq!(throttle.failed(ip("2001:db8:1:2::1")), None);
        assert!(throttle.failed(ip("2001:db8:1:2::ffff")).is_some());
        assert_eq!(throttle.failed(ip("2001:db8:1:3::1")), None);
        assert_eq!(key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn memory_is_bounded_by_the_address_limit() {
        let throttle = FailureThrottle::new(NonZeroU32::new(5).unwrap(), 2);
        assert_eq!(throttle.failed(ip("10.0.0.1")), None);
        assert_eq!(throttle.failed(ip("10.0.0.2")), None);
        assert!(throttle.failed(ip("10.0.0.3")).is_some());
        assert!(throttle.failures.len() <= 2);
        assert!(throttle.refused_for(ip("10.0.0.3")).is_none());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(5_200)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
