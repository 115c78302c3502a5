//! How many sends the sender keeps in flight: enough to reach the configured rate at the
//! latency the Cloud API shows, and no more (Little's law: in flight = rate × time each send
//! holds its slot).
//!
//! A fixed number caps the rate at `slots ÷ latency` whatever the rate limit says (64 slots
//! against a 250 ms round trip send 256/s, however high the tier). Far more slots than the
//! rate needs are not free either: each one is a claimed row (or a handed-over reply) waiting
//! in the pacer while its decision ages. So the limit follows an exponentially weighted mean
//! of the time one rate token's worth of a send keeps its slot busy, *not counting the time it
//! waits for the pacer* (counting that would feed back: more slots → longer waits → more
//! slots, up to the bound), times the rate, with headroom; `messaging.max_in_flight` bounds it.
//!
//! The pacer still holds the rate in every sliding second ([`pacing`](super::pacing)): this
//! only decides how many sends may be on their way to it.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Slots beyond rate × busy time: covers the spread of busy times around their mean and a
/// rate too low for Little's law to say much (a few sends a second).
const SLACK: f64 = 16.0;
/// Headroom over rate × mean busy time: busy times vary (a slow answer, a record waiting for
/// its batch), and a slot short means a token unused, which the rate never gets back.
const HEADROOM: f64 = 1.5;
/// Weight of one observation in the mean: about the last 20 sends. At hundreds a second the
/// limit follows a change in latency within a fraction of a second.
const ALPHA: f64 = 0.05;
/// The busy time assumed before anything was measured: a second, so the first sends are not
/// capped by a guess below the Graph API's real latency. At 100 ms against a 500 ms Graph API
/// the first half second went out at a third of the rate, and where the offered rate is the
/// rate that backlog never drains (release bench, 1,000/s: reply p99 1.03 s over 60 s). The
/// mean comes down to the latency observed within about a hundred sends.
const INITIAL_BUSY: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// What the send running in this task spent waiting for the pacer, and how many rate
    /// tokens it took (set by [`InFlight::run`], added to by the pacer).
    static PACED: Cell<(Duration, u32)>;
}

/// Tells the send running in this task (if any) that it waited `waited` for one rate token.
pub fn record_pacing(waited: Duration) {
    let _ = PACED.try_with(|p| {
        let (total, tokens) = p.get();
        p.set((total + waited, tokens + 1));
    });
}

/// The sender's in-flight limit. Shared by the sender loop and its send tasks.
#[derive(Debug)]
pub struct InFlight {
    rate: f64,
    cap: usize,
    /// Mean busy time per rate token, in microseconds (f64 bits).
    busy_us: AtomicU64,
    in_flight: AtomicUsize,
    freed: Notify,
}

/// One slot; given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

impl InFlight {
    /// A limit for `rate` requests per second, never above `cap` slots.
    pub fn new(rate: u32, cap: usize) -> Arc<Self> {
        Arc::new(Self {
            rate: f64::from(rate.max(1)),
            cap: cap.max(1),
            busy_us: AtomicU64::new((INITIAL_BUSY.as_micros() as f64).to_bits()),
            in_flight: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    /// The number of slots the rate needs at the busy time measured so far, within the bound.
    pub fn limit(&self) -> usize {
        let busy = f64::from_bits(self.busy_us.load(Ordering::Relaxed)) / 1e6;
        let wanted = (self.rate * busy * HEADROOM + SLACK).ceil();
        // `as` saturates: a huge or NaN product becomes the cap or 0, then clamped.
        (wanted as usize).clamp(1, self.cap)
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.limit()
            .saturating_sub(self.in_flight.load(Ordering::Acquire))
    }

    /// Sends holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits for a free slot. Only the sender loop waits, so one wakeup per freed slot is
    /// enough (`notify_one` keeps it when nobody waits yet).
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let current = self.in_flight.load(Ordering::Acquire);
            if current < self.limit() {
                if self
                    .in_flight
                    .compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Slot(self.clone());
                }
                continue;
            }
            self.freed.notified().await;
        }
    }

    /// Runs `send` holding `slot` and learns from how long it kept it busy, minus its waits
    /// for the pacer, per rate token it took.
    pub async fn run<F: Future<Output = ()>>(&self, slot: Slot, send: F) {
        let started = Instant::now();
        let (paced, tokens) = PACED
            .scope(Cell::new((Duration::ZERO, 0)), async {
                send.await;
                PACED.with(Cell::get)
            })
            .await;
        // A send that took no token (deferred, skipped) used its slot all the same: counted
        // as one, so a run of them still shows the slots are busy.
        let busy = started.elapsed().saturating_sub(paced) / tokens.max(1);
        self.observe(busy);
        drop(slot);
    }

    /// Adds one busy time to the mean.
    pub fn observe(&self, busy: Duration) {
        let sample = busy.as_micros() as f64;
        // Lost updates between concurrent observers only drop a sample: fine for a mean.
        let old = f64::from_bits(self.busy_us.load(Ordering::Relaxed));
        let new = old + ALPHA * (sample - old);
        self.busy_us.store(new.to_bits(), Ordering::Relaxed);
        // A longer busy time may have raised the limit: the waiting loop looks again.
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_rate_times_busy_time_with_headroom_within_the_bound() {
        let f = InFlight::new(1000, 1000);
        for _ in 0..500 {
            f.observe(Duration::from_millis(250));
        }
        // 1000/s × 0.25 s × 1.5 + 16 = 391.
        assert!((385..=392).contains(&f.limit()), "{}", f.limit());
        for _ in 0..500 {
            f.observe(Duration::from_secs(2));
        }
        assert_eq!(f.limit(), 1000, "the bound holds");
        let slow_rate = InFlight::new(10, 1000);
        for _ in 0..500 {
            slow_rate.observe(Duration::from_millis(250));
        }
        assert!(slow_rate.limit() <= 20, "{}", slow_rate.limit());
    }

    #[tokio::test]
    async fn pacing_waits_do_not_count_as_busy_time() {
        let f = InFlight::new(100, 1000);
        for _ in 0..200 {
            let slot = f.acquire().await;
            f.run(slot, async {
                record_pacing(Duration::from_secs(10));
            })
            .await;
        }
        // Each run took microseconds and "waited" 10 s: the mean falls towards zero.
        assert!(f.limit() <= 17, "{}", f.limit());
        assert_eq!(f.in_flight(), 0, "slots go back");
    }
}
