//! Outbound pacing:
//!
//! - **per phone number**: at most `rate_per_second` requests in any one-second window
//!   (reference §5.1; exceeding it is error 130429), in every sliding window, not per clock
//!   second. A token bucket alone cannot promise that: GCRA with burst `b` at rate `r` lets
//!   `b + r` requests into some one-second window (at 20/s the sink saw 21). So a bucket at the
//!   configured rate spreads the requests out, and a log of the last `rate` start times
//!   ([`SlidingWindow`]) holds the limit itself: a request starts only once the one `rate`
//!   requests before it started at least a window ago. The window is a little longer than a
//!   second (`messaging.rate_window_margin_ms`, 20 ms: 2% of the rate) because the limit is
//!   counted where the requests arrive, and two requests released a second apart arrive
//!   closer together when the first is held up on its way.
//! - **per recipient** (the pair rate limit, §5.2): bursts of `pair_burst`, then one message
//!   per `pair_interval_ms`. A row that must wait is deferred in the database (its lease
//!   released), so it does not hold a worker.
//!
//! Both are per instance; the number's rate is also shared with the other instances sending
//! from it when a [`SharedBudget`] is set (PostgreSQL or Redis).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use super::budget::SharedBudget;
use crate::config::MessagingSettings;

/// The two limiters of one sender.
pub struct Pacing {
    /// Spreads the number's requests over the second (no burst of the whole rate at once).
    spread: DefaultDirectRateLimiter,
    /// Holds the number's limit in every window.
    number: SlidingWindow,
    pair: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
    rate: u32,
    /// The rate every instance shares; `None`: this instance's own limits only.
    shared: Option<SharedBudget>,
}

/// The spreading bucket's burst for `rate` messages per second: a tenth of a second's sends
/// (at least 2), so a sender that stalled catches up; the window, not the bucket, holds the
/// limit.
///
/// The sends a stall leaves out (a slow pipeline batch upstream, the process not scheduled for
/// a while) come back only through the burst. Where the offered rate is close to the rate,
/// each one left out stays backlog for good: with a burst of 1% (10 at 1,000/s), stalls of up
/// to 80-90 ms in a 60 s run at 1,000/s offered against a 250 ms Graph API left the reply p99
/// at 405 ms; with a tenth, 242 ms (release bench, `cargo bench --bench load`, README).
pub fn spread_burst(rate: u32) -> u32 {
    (rate / 10).max(2).min(rate.max(1))
}

/// At most `limit` starts in any `window`: the start times of the last `limit` requests,
/// and a request waits until the oldest of them is a window old. Waiters go in turn (a fair
/// lock held while waiting), and each records the time it actually starts, so a waiter woken
/// late never lets the next one start early.
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    starts: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1) as usize;
        Self {
            limit,
            window,
            starts: tokio::sync::Mutex::new(VecDeque::with_capacity(limit)),
        }
    }

    /// Waits until one more request may start, and counts it as started now.
    pub async fn ready(&self) -> Instant {
        let mut starts = self.starts.lock().await;
        if starts.len() >= self.limit
            && let Some(oldest) = starts.pop_front()
        {
            tokio::time::sleep_until(oldest + self.window).await;
        }
        let now = Instant::now();
        starts.push_back(now);
        now
    }
}

impl Pacing {
    pub fn new(settings: &MessagingSettings) -> Self {
        Self::at_rate(settings, settings.rate_per_second)
    }

    /// The limiters of a number whose own rate is `rate` (see
    /// [`numbers`](crate::config::numbers)); the rest as `settings` say.
    pub fn at_rate(settings: &MessagingSettings, rate: u32) -> Self {
        let rate = rate.max(1);
        let spread = Quota::per_second(NonZeroU32::new(rate).expect("rate >= 1"))
            .allow_burst(NonZeroU32::new(spread_burst(rate)).expect("burst >= 1"));
        let pair = Quota::with_period(Duration::from_millis(settings.pair_interval_ms.max(1)))
            .expect("period > 0")
            .allow_burst(NonZeroU32::new(settings.pair_burst.max(1)).expect("burst >= 1"));
        Pacing {
            spread: RateLimiter::direct(spread),
            number: SlidingWindow::new(rate, Self::window(settings)),
            pair: RateLimiter::keyed(pair),
            clock: DefaultClock::default(),
            rate,
            shared: None,
        }
    }

    /// Also holds the number's rate across instances through `shared`.
    #[must_use]
    pub fn with_shared(mut self, shared: Option<SharedBudget>) -> Self {
        self.shared = shared;
        self
    }

    /// The number's requests per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The window the number's rate is counted over (a second and the margin).
    pub fn window(settings: &MessagingSettings) -> Duration {
        Duration::from_secs(1) + Duration::from_millis(settings.rate_window_margin_ms)
    }

    /// Waits until the phone number may make one more request.
    pub async fn number_ready(&self) {
        let asked = Instant::now();
        self.spread.until_ready().await;
        self.number.ready().await;
        if let Some(shared) = &self.shared {
            shared.ready().await;
        }
        // Waiting here is not the Cloud API being slow: the in-flight limit leaves it out.
        super::inflight::record_pacing(asked.elapsed());
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

    /// The most of `starts` in any half-open window of `window`, as a receiver counts them.
    fn most_in_a_window(starts: &[Instant], window: Duration) -> usize {
        (0..starts.len())
            .map(|i| {
                starts[i..]
                    .iter()
                    .take_while(|t| **t < starts[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn no_window_ever_holds_more_than_the_limit() {
        // A short window so the test runs in real time: 40 starts, 5 per 100 ms, from 8
        // concurrent waiters (as the sender's workers wait).
        let window = std::sync::Arc::new(SlidingWindow::new(5, Duration::from_millis(100)));
        let waiters = (0..8).map(|_| {
            let window = window.clone();
            tokio::spawn(async move {
                let mut starts = Vec::new();
                for _ in 0..5 {
                    starts.push(window.ready().await);
                }
                starts
            })
        });
        let mut starts = Vec::new();
        for waiter in waiters {
            starts.extend(waiter.await.unwrap());
        }
        starts.sort_unstable();
        assert_eq!(starts.len(), 40);
        assert_eq!(most_in_a_window(&starts, Duration::from_millis(100)), 5);
    }

    #[tokio::test]
    async fn the_window_counts_from_when_a_late_waiter_really_started() {
        let window = SlidingWindow::new(2, Duration::from_millis(200));
        let a = window.ready().await;
        // The second start is late (as if its task ran late): the fourth waits for it, not
        // for where the second would have been.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let b = window.ready().await;
        let c = window.ready().await;
        let d = window.ready().await;
        assert!(b - a >= Duration::from_millis(50));
        assert!(c - a >= Duration::from_millis(200), "{:?}", c - a);
        assert!(d - b >= Duration::from_millis(200), "{:?}", d - b);
    }

    #[test]
    fn the_spreading_burst_is_small_and_never_above_the_rate() {
        for rate in [1, 2, 20, 199, 200, 10_000] {
            let burst = spread_burst(rate);
            assert!(burst >= 1 && burst <= rate, "{rate}: {burst}");
            assert!(burst <= 2 || burst == rate / 10, "{rate}: {burst}");
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
