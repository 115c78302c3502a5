//! Outbound pacing with `governor` (GCRA token buckets):
//!
//! - **per phone number**: at most `rate_per_second` requests in any one-second window
//!   (reference §5.1; exceeding it is error 130429). GCRA with burst `b` and rate `r'` lets at
//!   most `b + r' - 1` cells into any window shorter than a second, so the bucket runs a
//!   little below the configured rate with a small burst that absorbs timer lateness (see
//!   [`number_bucket`]). That keeps the sustained rate at ~97-99% of the configured one and
//!   never above it (measured by `cargo bench --bench outbound`).
//! - **per recipient** (the pair rate limit, §5.2): bursts of `pair_burst`, then one message
//!   per `pair_interval_ms`. A row that must wait is deferred in the database (its lease
//!   released), so it does not hold a worker.
//!
//! Both are per instance: several instances sending from one number must split the rate.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::MessagingSettings;

/// The two limiters of one sender.
pub struct Pacing {
    number: DefaultDirectRateLimiter,
    pair: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
}

/// The bucket for `rate` messages per second: `(burst, effective sustained rate)`.
///
/// The burst (2, or 1% of the rate) lets the limiter catch up when a timer wakes late, which
/// would otherwise cost throughput at every tick. The headroom (1% of the rate, at least one
/// message from 50/s up) absorbs requests that leave evenly but arrive bunched by the network.
/// The GCRA bound `burst + effective - 1 + headroom <= rate` holds for every rate.
pub fn number_bucket(rate: u32) -> (u32, u32) {
    let rate = rate.max(1);
    let burst = if rate >= 20 { (rate / 100).max(2) } else { 1 };
    let headroom = match rate {
        100.. => rate / 100,
        50..=99 => 1,
        _ => 0,
    };
    (burst, (rate + 1 - burst - headroom).max(1))
}

impl Pacing {
    pub fn new(settings: &MessagingSettings) -> Self {
        let (burst, effective) = number_bucket(settings.rate_per_second);
        let period = Duration::from_nanos(1_000_000_000 / u64::from(effective));
        let number = Quota::with_period(period)
            .expect("period > 0")
            .allow_burst(NonZeroU32::new(burst).expect("burst >= 1"));
        let pair = Quota::with_period(Duration::from_millis(settings.pair_interval_ms.max(1)))
            .expect("period > 0")
            .allow_burst(NonZeroU32::new(settings.pair_burst.max(1)).expect("burst >= 1"));
        Pacing {
            number: RateLimiter::direct(number),
            pair: RateLimiter::keyed(pair),
            clock: DefaultClock::default(),
        }
    }

    /// Waits until the phone number may make one more request.
    pub async fn number_ready(&self) {
        self.number.until_ready().await;
    }

    /// Takes a per-recipient token for `contact_id`, or says how long to wait for one.
    ///
    /// # Errors
    /// The wait when the contact's burst is used up.
    pub fn pair_check(&self, contact_id: i64) -> Result<(), Duration> {
        self.pair
            .check_key(&contact_id)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets recipients whose bucket is full again (keeps memory bounded).
    pub fn forget_idle(&self) {
        self.pair.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_bucket_never_allows_more_than_the_rate_in_a_second() {
        for rate in [1, 2, 5, 19, 20, 80, 250, 1000, 10_000] {
            let (burst, effective) = number_bucket(rate);
            assert!(
                burst + effective - 1 <= rate,
                "{rate}: {burst} + {effective}"
            );
            assert!(
                f64::from(effective) >= 0.95 * f64::from(rate) || rate < 20,
                "{rate}: {effective}"
            );
        }
    }

    #[test]
    fn the_pair_limit_allows_a_burst_then_asks_to_wait() {
        let p = Pacing::new(&MessagingSettings {
            pair_burst: 3,
            pair_interval_ms: 6_000,
            ..MessagingSettings::default()
        });
        for _ in 0..3 {
            assert!(p.pair_check(7).is_ok());
        }
        let wait = p.pair_check(7).unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        assert!(
            p.pair_check(8).is_ok(),
            "another contact has its own bucket"
        );
    }
}
