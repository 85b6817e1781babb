//! Rate-limited logging: a flood of rejected requests or failed handshakes cannot turn the log
//! into a disk-filler.
//!
//! Every event this crate logs for something a peer did (a rejected request, a stripped or bad
//! forwarded-certificate header, a failed or timed-out handshake, a shed connection) goes through
//! a limiter of its own kind. Per kind, at most [`events_per_second`] events are logged in full
//! per second; the rest are counted, and the next event of that kind that is logged carries the
//! count in its `suppressed` field ("this many like it were not logged since the previous one").
//! The first event of each kind is always logged in full. Per-event counting belongs in metrics,
//! not logs.
//!
//! ```
//! use std::num::NonZeroU32;
//!
//! assert_eq!(mtls_tower::logging::events_per_second(), Some(10)); // the default
//! mtls_tower::logging::set_events_per_second(NonZeroU32::new(2).unwrap());
//! assert_eq!(mtls_tower::logging::events_per_second(), Some(2));
//! // The named opt-out, for a test or a debugging session: every event is logged.
//! mtls_tower::logging::log_every_event();
//! assert_eq!(mtls_tower::logging::events_per_second(), None);
//! # mtls_tower::logging::set_events_per_second(NonZeroU32::new(10).unwrap());
//! ```

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// The default number of events of one kind logged in full per second.
pub const DEFAULT_EVENTS_PER_SECOND: u32 = 10;

/// 0 means "no limit" (set only by [`log_every_event`]).
static EVENTS_PER_SECOND: AtomicU32 = AtomicU32::new(DEFAULT_EVENTS_PER_SECOND);

/// Logs at most `n` events of each kind per second in full (default 10), process-wide; the
/// others are counted into the next logged event's `suppressed` field.
pub fn set_events_per_second(n: NonZeroU32) {
    EVENTS_PER_SECOND.store(n.get(), Relaxed);
}

/// Logs every event, without a rate limit (process-wide). A flood of bad clients then writes one
/// line per attempt: use it for tests and debugging, not in production.
pub fn log_every_event() {
    EVENTS_PER_SECOND.store(0, Relaxed);
}

/// The current limit per kind and second; `None` after [`log_every_event`].
pub fn events_per_second() -> Option<u32> {
    match EVENTS_PER_SECOND.load(Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// Milliseconds since the first use of any limiter (a process-wide monotonic clock).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One kind of event's limiter: a one-second window with a count, lock-free. Races between
/// threads at a window's edge can let a few extra events through; they can never suppress the
/// first of a window.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// When the current window started, in [`now_ms`] time, plus one (0: never used).
    window_start: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU64,
}

impl Limiter {
    pub(crate) const fn new() -> Limiter {
        Limiter {
            window_start: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log this event; if so, with how many of its kind were suppressed since the
    /// previous logged one.
    pub(crate) fn admit(&self) -> Option<u64> {
        let limit = EVENTS_PER_SECOND.load(Relaxed);
        if limit == 0 {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        let now = now_ms().saturating_add(1);
        let start = self.window_start.load(Relaxed);
        if (start == 0 || now.saturating_sub(start) >= 1000)
            && self
                .window_start
                .compare_exchange(start, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.in_window.store(0, Relaxed);
        }
        if self.in_window.fetch_add(1, Relaxed) < limit {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The global limit is shared by every test in this binary; these tests only read it, and the
    // one doc test that changes it runs in a process of its own.

    #[test]
    fn the_first_events_of_a_window_are_admitted_then_the_rest_counted() {
        let limiter = Limiter::new();
        let admitted: Vec<Option<u64>> = (0..25).map(|_| limiter.admit()).collect();
        let logged = admitted.iter().filter(|a| a.is_some()).count();
        // Unless the test straddles a window edge, exactly the limit; never more than twice it.
        assert!(
            (DEFAULT_EVENTS_PER_SECOND as usize..=2 * DEFAULT_EVENTS_PER_SECOND as usize)
                .contains(&logged),
            "{logged} of 25 admitted"
        );
        assert_eq!(admitted[0], Some(0), "the first event is always logged");
    }

    #[test]
    fn the_next_logged_event_reports_how_many_were_suppressed() {
        let limiter = Limiter::new();
        for _ in 0..(DEFAULT_EVENTS_PER_SECOND + 5) {
            limiter.admit();
        }
        // Start a new window by hand (as if a second had passed): its first event carries the
        // count.
        limiter.window_start.store(0, Relaxed);
        let first = limiter.admit();
        assert!(matches!(first, Some(n) if n >= 5), "{first:?}");
        assert_eq!(limiter.suppressed.load(Relaxed), 0);
    }

    #[test]
    fn kinds_are_limited_independently() {
        let a = Limiter::new();
        let b = Limiter::new();
        for _ in 0..100 {
            a.admit();
        }
        assert_eq!(b.admit(), Some(0));
    }
}
