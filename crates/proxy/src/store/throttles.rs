//! The throttles' counting rule, above the backends: a sliding window estimated from two fixed
//! ones (the count of the current window, plus the last window's weighted by how much of it the
//! sliding window still covers). Fixed windows alone let a client spend its budget twice around a
//! boundary (the end of one window, the start of the next), and reset a count mid-burst.

/// What a backend keeps per (kind, key): the window it counted last, its count, and the count of
/// the window before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    pub window: i64,
    pub n: i64,
    pub prev: i64,
}

/// The counts as seen from `window`.
fn seen_from(stored: Option<Counted>, window: i64) -> Counted {
    match stored {
        Some(c) if c.window == window => c,
        Some(c) if c.window == window - 1 => Counted {
            window,
            n: 0,
            prev: c.n,
        },
        _ => Counted {
            window,
            n: 0,
            prev: 0,
        },
    }
}

/// The attempts in the sliding window ending now, `elapsed` (0 to 1) into `window`.
pub fn estimate(stored: Option<Counted>, window: i64, elapsed: f64) -> f64 {
    let c = seen_from(stored, window);
    c.prev as f64 * (1.0 - elapsed.clamp(0.0, 1.0)) + c.n as f64
}

/// One more attempt, if it keeps the sliding window within `limit`: the counts to store, or `None`
/// (refused, nothing to store).
pub fn attempt(stored: Option<Counted>, window: i64, elapsed: f64, limit: u32) -> Option<Counted> {
    if estimate(stored, window, elapsed) + 1.0 > f64::from(limit) + 1e-9 {
        return None;
    }
    let c = seen_from(stored, window);
    Some(Counted { n: c.n + 1, ..c })
}

/// Slices a shared call budget's window is counted in (as the pacer's own tallies).
pub const SLICES: i64 = 64;

/// The slice `now` falls in, for a window of `window`, and how long a slice is in milliseconds.
pub fn slice_of(now: chrono::DateTime<chrono::Utc>, window: std::time::Duration) -> (i64, i64) {
    let slice_ms = (window.as_millis() as i64 / SLICES).max(1);
    (now.timestamp_millis().div_euclid(slice_ms), slice_ms)
}

/// The oldest slice still counted at `current`: a window of slices, and the current one.
pub fn oldest_counted(current: i64) -> i64 {
    current - SLICES
}

/// When the calls of `slice` stop counting.
pub fn released_at(slice: i64, slice_ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis((slice + SLICES + 1) * slice_ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boundary_does_not_reset_the_count_and_a_whole_window_later_it_has_gone() {
        let mut stored = None;
        for _ in 0..3 {
            stored = attempt(stored, 10, 0.9, 3);
            assert!(stored.is_some());
        }
        assert_eq!(attempt(stored, 10, 0.95, 3), None, "the limit");
        // Just past the boundary the last window still counts almost whole.
        assert_eq!(attempt(stored, 11, 0.01, 3), None);
        // Half-way through the next, half of it: one more fits.
        let half = attempt(stored, 11, 0.5, 3).unwrap();
        assert_eq!((half.window, half.n, half.prev), (11, 1, 3));
        // Two windows on, nothing is left of it.
        assert_eq!(estimate(stored, 12, 0.0), 0.0);
        assert!(attempt(stored, 12, 0.0, 3).is_some());
        assert_eq!(attempt(None, 1, 0.0, 0), None, "a limit of nothing");
    }
}
