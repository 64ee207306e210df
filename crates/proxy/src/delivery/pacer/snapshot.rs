//! A pacer's state on the wall clock, so that the next proxy to hold a connection's delivery lease
//! carries on from where the last holder left off instead of starting afresh (and spending a
//! window the provider had already counted). `Instant`s mean nothing in another process; each
//! time is kept as microseconds since the Unix epoch, converted through one (`Instant`, wall
//! clock) pair read together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Band, Pacer, Tally};

/// What a [`Pacer`] knows, to be stored with the lease. Its limits are not in it: each proxy
/// takes them from its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken (µs since the epoch).
    at: i64,
    sent: Vec<i64>,
    tokens: f64,
    refilled: Option<i64>,
    /// (sent, answered, remaining) of the last answer with a count.
    counted: Option<(i64, i64, u32)>,
    pending: Vec<i64>,
    band: Option<(i64, i64)>,
    current_start: Option<i64>,
    hold_until: Option<i64>,
    /// Each longer window's slices: (start, calls).
    longer: Vec<Vec<(i64, u32)>>,
    heavy: Option<Vec<(i64, u32)>>,
}

/// One moment read on both clocks: converts between them.
#[derive(Debug, Clone, Copy)]
struct Wall {
    instant: Instant,
    micros: i64,
}

impl Wall {
    fn new(instant: Instant, wall: DateTime<Utc>) -> Self {
        Self {
            instant,
            micros: wall.timestamp_micros(),
        }
    }

    fn micros(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.instant) {
            Some(after) => self.micros.saturating_add(after.as_micros() as i64),
            None => self
                .micros
                .saturating_sub(self.instant.duration_since(t).as_micros() as i64),
        }
    }

    /// The instant of a wall-clock time; `None` when the platform's `Instant` cannot hold it
    /// (a time that far off no longer matters to any window).
    fn instant(&self, micros: i64) -> Option<Instant> {
        let delta = micros.saturating_sub(self.micros);
        let d = Duration::from_micros(delta.unsigned_abs());
        if delta >= 0 {
            self.instant.checked_add(d)
        } else {
            self.instant.checked_sub(d)
        }
    }
}

fn slices_out(w: &Wall, t: &Tally) -> Vec<(i64, u32)> {
    t.slices.iter().map(|(s, n)| (w.micros(*s), *n)).collect()
}

fn slices_in(w: &Wall, t: &mut Tally, slices: &[(i64, u32)]) {
    t.slices = slices
        .iter()
        .filter_map(|(s, n)| Some((w.instant(*s)?, *n)))
        .collect();
}

impl Pacer {
    /// Its state at `now` (the wall clock reading `wall` at the same moment).
    pub fn snapshot(&self, now: Instant, wall: DateTime<Utc>) -> Snapshot {
        let w = Wall::new(now, wall);
        let t = |i: &Instant| w.micros(*i);
        Snapshot {
            at: w.micros(now),
            sent: self.sent.iter().map(t).collect(),
            tokens: self.tokens,
            refilled: self.refilled.as_ref().map(t),
            counted: self.counted.map(|(s, a, r)| (t(&s), t(&a), r)),
            pending: self.pending.iter().map(t).collect(),
            band: self.band.map(|b| (t(&b.lo), t(&b.hi))),
            current_start: self.current_start.as_ref().map(t),
            hold_until: self.hold_until.as_ref().map(t),
            longer: self.longer.iter().map(|l| slices_out(&w, l)).collect(),
            heavy: self.heavy.as_ref().map(|h| slices_out(&w, h)),
        }
    }

    /// This (freshly configured) pacer carrying on from `s`, at `now` (`wall` on the wall clock).
    /// Windows this proxy does not count (its settings changed) start empty.
    pub fn restore(mut self, s: &Snapshot, now: Instant, wall: DateTime<Utc>) -> Self {
        let w = Wall::new(now, wall);
        let t = |m: &i64| w.instant(*m);
        self.sent = s.sent.iter().filter_map(t).collect();
        while self.sent.len() > self.limit.per_window as usize {
            self.sent.pop_front();
        }
        self.tokens = s.tokens;
        self.refilled = s.refilled.as_ref().and_then(t);
        self.counted = s.counted.and_then(|(a, b, r)| Some((t(&a)?, t(&b)?, r)));
        self.pending = s.pending.iter().filter_map(t).collect::<VecDeque<_>>();
        self.band = s.band.and_then(|(lo, hi)| {
            Some(Band {
                lo: t(&lo)?,
                hi: t(&hi)?,
            })
        });
        self.current_start = s.current_start.as_ref().and_then(t);
        self.hold_until = s.hold_until.as_ref().and_then(t);
        if s.longer.len() == self.longer.len() {
            for (tally, slices) in self.longer.iter_mut().zip(&s.longer) {
                slices_in(&w, tally, slices);
            }
        }
        if let (Some(tally), Some(slices)) = (self.heavy.as_mut(), &s.heavy) {
            slices_in(&w, tally, slices);
        }
        self
    }

    /// Carrying on after a holder that stopped without letting go (its lease ran out): for `gap`
    /// (since it last wrote its pacing) it may have made calls nobody recorded. It made them
    /// within its lease, so before `now`; every window that counted one of them has ended a
    /// window after `now`. Nothing goes before then, and the longer windows count the most it
    /// could have made (the main window's limit in each window the gap touches).
    pub fn after_a_lost_holder(&mut self, gap: Duration, now: Instant) {
        let window = self.limit.window;
        self.hold(now + window);
        let windows = (gap.as_nanos() / window.as_nanos().max(1)) as u32 + 1;
        let unseen = self.limit.per_window.saturating_mul(windows);
        for tally in &mut self.longer {
            tally.assume(unseen, now);
        }
    }
}

impl Snapshot {
    /// When it was written (on the wall clock).
    pub fn taken_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at).unwrap_or_default()
    }
}

impl Tally {
    /// Counts `n` calls at `now` that may have been made without being seen.
    fn assume(&mut self, n: u32, now: Instant) {
        self.sent(now);
        if let Some((_, count)) = self.slices.back_mut() {
            *count = count.saturating_add(n.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cost, Limit, Quota};
    use super::*;

    fn minute() -> Limit {
        Limit {
            per_window: 60,
            window: Duration::from_secs(60),
        }
    }

    fn hubrise_like() -> Pacer {
        Pacer::new(minute()).with(
            &[Limit {
                per_window: 100,
                window: Duration::from_secs(3600),
            }],
            Some(Limit {
                per_window: 10,
                window: Duration::from_secs(60),
            }),
        )
    }

    #[test]
    fn a_pacer_carried_over_to_another_process_keeps_what_it_counted() {
        let t0 = Instant::now();
        let wall0 = Utc::now();
        let mut pacer = Pacer::new(minute());
        // Twenty calls, the provider counting down from 59.
        for i in 0..20u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 100);
            pacer.sent(at);
            pacer.answered(
                at,
                at + Duration::from_millis(50),
                Quota {
                    remaining: Some(59 - i),
                    ..Quota::default()
                },
            );
        }
        pacer.hold(t0 + Duration::from_secs(30));
        let now = t0 + Duration::from_secs(3);
        let snap = pacer.snapshot(now, wall0 + chrono::Duration::seconds(3));
        let text = serde_json::to_string(&snap).unwrap();
        let snap: Snapshot = serde_json::from_str(&text).unwrap();

        // Another process: its Instants have nothing to do with these; the wall clock is shared.
        let t1 = t0 + Duration::from_secs(1_000);
        let wall1 = wall0 + chrono::Duration::seconds(3);
        let restored = Pacer::new(minute()).restore(&snap, t1, wall1);
        assert_eq!(restored.sent.len(), 20);
        assert_eq!(restored.counted.map(|c| c.2), Some(40));
        // The hold carries over: 27 s from the moment of the snapshot.
        let wait = restored.wait(t1);
        assert!(
            wait > Duration::from_millis(26_900) && wait <= Duration::from_secs(27),
            "{wait:?}"
        );
        // And it is the same pacer, whichever process asks.
        assert_eq!(
            restored.snapshot(t1, wall1),
            pacer.snapshot(now, wall0 + chrono::Duration::seconds(3))
        );
    }

    #[test]
    fn longer_windows_and_heavy_calls_carry_over() {
        let t0 = Instant::now();
        let wall0 = Utc::now();
        let mut pacer = hubrise_like();
        for i in 0..10u64 {
            pacer.sent_as(Cost::Heavy, t0 + Duration::from_millis(i * 10));
        }
        let snap = pacer.snapshot(t0 + Duration::from_secs(1), wall0);
        let restored = hubrise_like().restore(
            &snap,
            t0 + Duration::from_secs(500),
            wall0 + chrono::Duration::milliseconds(100),
        );
        let now = t0 + Duration::from_secs(500);
        assert!(
            restored.ready_for(Cost::Heavy, now) > now,
            "the ten heavy reads still count"
        );
        assert_eq!(
            restored.longer[0].slices.iter().map(|s| s.1).sum::<u32>(),
            10
        );
        // Settings that no longer count an hour: the hour is not carried into the wrong window.
        let plain = Pacer::new(minute()).restore(&snap, now, wall0);
        assert!(plain.longer.is_empty() && plain.heavy.is_none());
    }

    #[test]
    fn after_a_holder_that_never_let_go_nothing_goes_for_a_window_and_the_hour_counts_the_gap() {
        let t0 = Instant::now();
        let wall0 = Utc::now();
        let snap = hubrise_like().snapshot(t0, wall0);
        let mut taker = hubrise_like().restore(&snap, t0, wall0);
        // Taken over 20 s after the last snapshot: one window at most was touched, plus one.
        let now = t0 + Duration::from_secs(20);
        let gap = (wall0 + chrono::Duration::seconds(20) - snap.taken_at())
            .to_std()
            .unwrap();
        taker.after_a_lost_holder(gap, now);
        assert_eq!(taker.wait(now), Duration::from_secs(60));
        assert_eq!(taker.longer[0].slices.iter().map(|s| s.1).sum::<u32>(), 60);
    }

    #[test]
    fn wall_clock_times_convert_both_ways() {
        let now = Instant::now();
        let wall = Utc::now();
        let w = Wall::new(now, wall);
        assert_eq!(w.instant(w.micros(now)), Some(now));
        let later = now + Duration::from_millis(1_500);
        assert_eq!(w.instant(w.micros(later)), Some(later));
        let earlier = now.checked_sub(Duration::from_millis(2_500)).unwrap();
        assert_eq!(w.instant(w.micros(earlier)), Some(earlier));
        assert_eq!(w.micros(later) - w.micros(earlier), 4_000_000);
    }
}
