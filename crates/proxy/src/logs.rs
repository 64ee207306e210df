//! Helpers for the proxy's logs: a warning that would repeat on every retry (a full disk, a
//! refused accept) is written at most once a minute, with how many times it happened meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Says when a repeating log line is due: the first time, then at most once per period.
#[derive(Debug)]
pub struct Every {
    period: Duration,
    last: Mutex<Option<Instant>>,
    skipped: AtomicU64,
}

impl Every {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(None),
            skipped: AtomicU64::new(0),
        }
    }

    pub fn minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// True when the line should be written now.
    pub fn due(&self) -> bool {
        self.due_counting().is_some()
    }

    /// `Some(n)` when the line should be written now, `n` being how many were left out since the
    /// last one.
    pub fn due_counting(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < self.period => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.skipped.swap(0, Ordering::Relaxed))
            }
        }
    }

    /// Starts afresh (the trouble is over): the next occurrence is written at once.
    pub fn reset(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.skipped.store(0, Ordering::Relaxed);
    }

    /// Whether a line was written since the last reset (the trouble was reported).
    pub fn reported(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_line_is_due_once_per_period_and_counts_the_rest() {
        let every = Every::new(Duration::from_millis(200));
        assert_eq!(every.due_counting(), Some(0));
        assert!(!every.due());
        assert!(!every.due());
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(every.due_counting(), Some(2));
        every.reset();
        assert!(!every.reported());
        assert!(every.due());
    }
}
