//! Pacing calls to a provider's fixed-window limit (`per_window` calls a `window`, counted in
//! windows whose alignment the provider does not publish), never waiting for a `429` to learn.
//!
//! What the provider says about its count is the guide. Xero answers every call with the calls left
//! in the current window (`X-MinLimit-Remaining`): while some are left the next call may go; at none
//! the pacer waits for the window to end. The count jumping back up between two calls marks a
//! window's start between them, so the windows' alignment is learned (to within the spacing of two
//! calls) from ordinary traffic; until it is, a spent window is waited out in full from the answer
//! that spent it. Until the alignment is known calls go at the provider's rate, so that two of them
//! straddle a window's start; once it is, each window's calls go as early as they can (a slow call
//! then costs nothing while the window lasts) and a spent window is waited out to its end.
//!
//! A provider that says nothing is paced by a sliding log: at most `per_window` calls in any
//! stretch of `window` plus a 2% margin for the time calls take to arrive, so no fixed window,
//! however aligned, sees more than its limit.
//!
//! A provider may also count longer windows (HubRise: 2,500 calls an hour and 10,000 a day besides
//! 500 a minute) and a costlier kind of call apart (HubRise's heavy reads: ten order lists a
//! minute). Each is a [`Tally`]: at most its limit in any stretch of its window, counted in slices,
//! so a day costs a few dozen counters rather than a log of every call.
//!
//! Time is passed in (`now`), never read here: the tests drive the pacer with a clock of their own.

mod snapshot;

pub use snapshot::Snapshot;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A provider's limit: `per_window` calls in each fixed `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_window: u32,
    pub window: Duration,
}

impl Limit {
    /// At least one call in at least a millisecond: a limit the pacer can divide by.
    fn usable(self) -> Self {
        Self {
            per_window: self.per_window.max(1),
            window: self.window.max(Duration::from_millis(1)),
        }
    }
}

/// What one answer said about the allowance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Calls left in the provider's current window, when it says (Xero: `X-MinLimit-Remaining`).
    pub remaining: Option<u32>,
    /// The provider refused the call for its limit (`429`).
    pub limited: bool,
    /// How long it asked to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// When a provider refuses for its limit without saying how long to wait.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5);
/// Calls that may go back to back to catch up after a slow one, while a window's end is unknown.
const BURST: f64 = 2.0;

/// What a call costs: every call counts against the connection's windows; a heavy one (HubRise's
/// order lists) also against the provider's lower limit for its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    Light,
    Heavy,
}

/// Slices a [`Tally`]'s window is counted in.
const SLICES: u32 = 64;

/// At most `per_window` calls in any stretch of `window` (and one slice, so no fixed window,
/// however aligned, sees more), counted per slice of the window.
#[derive(Debug, Clone)]
pub struct Tally {
    limit: Limit,
    slice: Duration,
    /// (slice start, calls in it), oldest first.
    slices: VecDeque<(Instant, u32)>,
}

impl Tally {
    pub fn new(limit: Limit) -> Self {
        let limit = limit.usable();
        Self {
            limit,
            slice: limit.window / SLICES,
            slices: VecDeque::new(),
        }
    }

    /// When a slice's calls stop counting.
    fn released(&self, start: Instant) -> Instant {
        start + self.slice + self.limit.window
    }

    /// When the next call may go.
    pub fn ready_at(&self, now: Instant) -> Instant {
        let live: Vec<&(Instant, u32)> = self
            .slices
            .iter()
            .filter(|(start, _)| self.released(*start) > now)
            .collect();
        let mut over =
            live.iter().map(|(_, n)| *n).sum::<u32>() as i64 - i64::from(self.limit.per_window) + 1;
        if over <= 0 {
            return now;
        }
        for (start, n) in live {
            over -= i64::from(*n);
            if over <= 0 {
                return self.released(*start);
            }
        }
        now
    }

    /// A call goes now.
    pub fn sent(&mut self, now: Instant) {
        while self
            .slices
            .front()
            .is_some_and(|(start, _)| self.released(*start) <= now)
        {
            self.slices.pop_front();
        }
        match self.slices.back_mut() {
            Some((start, n)) if *start + self.slice > now => *n += 1,
            _ => self.slices.push_back((now, 1)),
        }
    }
}

/// Where the provider's window starts are known to lie: in `[lo, hi]`, give or take whole windows.
#[derive(Debug, Clone, Copy)]
struct Band {
    lo: Instant,
    hi: Instant,
}

/// One connection's pacer (or an app's, shared by its connections).
#[derive(Debug)]
pub struct Pacer {
    limit: Limit,
    /// Calls sent, for the sliding log of a provider that says nothing (the last `per_window`).
    sent: VecDeque<Instant>,
    /// The spacing bucket: calls that may go now, refilled at the provider's rate.
    tokens: f64,
    refilled: Option<Instant>,
    /// The last answer that carried a count: when its call went, when it came back, and the count.
    /// Calls sent after that call (in flight, refused, lost, answered without a count) are taken
    /// as counted too until a later count says otherwise.
    counted: Option<(Instant, Instant, u32)>,
    /// Calls sent and not answered yet (or lost): any of them may reach the provider after the
    /// counted one, so each is taken as counted. Forgotten two windows after it went.
    pending: VecDeque<Instant>,
    band: Option<Band>,
    /// The latest the window of the last counted answer can have started (set where the count
    /// jumped back up; calls counted after it without a jump are in the same window).
    current_start: Option<Instant>,
    hold_until: Option<Instant>,
    /// Whether to learn the windows' alignment: only when calls go one at a time, since a call
    /// that overtakes another on the way makes a count look as if a window had started.
    learns: bool,
    /// The provider's longer windows (an hour, a day).
    longer: Vec<Tally>,
    /// The limit of heavy calls.
    heavy: Option<Tally>,
}

impl Pacer {
    pub fn new(limit: Limit) -> Self {
        let limit = limit.usable();
        Self {
            limit,
            sent: VecDeque::new(),
            tokens: BURST.min(f64::from(limit.per_window)),
            refilled: None,
            counted: None,
            pending: VecDeque::new(),
            band: None,
            current_start: None,
            hold_until: None,
            learns: true,
            longer: Vec::new(),
            heavy: None,
        }
    }

    /// The same, also keeping to `longer` windows and to `heavy` for heavy calls.
    pub fn with(mut self, longer: &[Limit], heavy: Option<Limit>) -> Self {
        self.longer = longer.iter().copied().map(Tally::new).collect();
        self.heavy = heavy.map(Tally::new);
        self
    }

    /// A pacer for calls that may be in flight together (a budget shared by workers): it keeps to
    /// the counts but learns no alignment from them.
    pub fn concurrent(limit: Limit) -> Self {
        Self {
            learns: false,
            ..Self::new(limit)
        }
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// How long until the next call may go (zero: now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.ready_at(now).saturating_duration_since(now)
    }

    /// When the next call of `cost` may go.
    pub fn ready_for(&self, cost: Cost, now: Instant) -> Instant {
        let mut at = self.ready_at(now);
        for tally in self.longer.iter().chain(match cost {
            Cost::Heavy => self.heavy.as_ref(),
            Cost::Light => None,
        }) {
            at = at.max(tally.ready_at(now));
        }
        at
    }

    /// A call of `cost` goes now.
    pub fn sent_as(&mut self, cost: Cost, now: Instant) {
        self.sent(now);
        for tally in &mut self.longer {
            tally.sent(now);
        }
        if let (Cost::Heavy, Some(tally)) = (cost, self.heavy.as_mut()) {
            tally.sent(now);
        }
    }

    /// When the next call may go, by the main window alone.
    pub fn ready_at(&self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(h) = self.hold_until {
            at = at.max(h);
        }
        match self.counted {
            // The provider counts: its count decides, the bucket spreads the calls.
            Some((sent, answered, remaining)) => {
                let left = remaining.saturating_sub(self.uncounted(sent));
                if left == 0 {
                    // Spent: wait for the window to end.
                    at = at.max(self.window_end(sent, answered));
                } else if !self.learned() {
                    // Until the alignment is known, calls go at the provider's rate (with a short
                    // burst to catch up), so that two of them straddle a window's start.
                    let tokens = self.tokens_at(at);
                    if tokens < 1.0 {
                        at += self.per_call().mul_f64(1.0 - tokens);
                    }
                }
                // Known: the count alone decides, so each window's calls go as early as they can
                // and a slow call costs nothing while the window lasts.
            }
            // It says nothing: never more than its limit in any stretch of a window and a bit.
            None => {
                if self.sent.len() >= self.limit.per_window as usize {
                    let oldest = self.sent[self.sent.len() - self.limit.per_window as usize];
                    at = at.max(oldest + self.silent_window());
                }
            }
        }
        at
    }

    /// A call goes now.
    pub fn sent(&mut self, now: Instant) {
        self.tokens = self.tokens_at(now) - 1.0;
        self.refilled = Some(now);
        self.sent.push_back(now);
        while self.sent.len() > self.limit.per_window as usize {
            self.sent.pop_front();
        }
        let forget = now.checked_sub(self.limit.window * 2);
        while forget.is_some_and(|f| self.pending.front().is_some_and(|p| *p < f)) {
            self.pending.pop_front();
        }
        self.pending.push_back(now);
    }

    /// Calls the count of the call sent at `counted` may not include: those sent after it, and
    /// those sent before it that are still unanswered (they may arrive after it).
    fn uncounted(&self, counted: Instant) -> u32 {
        let after = self.sent.iter().filter(|s| **s > counted).count();
        let overtaken = self.pending.iter().filter(|p| **p < counted).count();
        (after + overtaken) as u32
    }

    /// The answer to the call sent at `sent`, back at `now`.
    pub fn answered(&mut self, sent: Instant, now: Instant, quota: Quota) {
        if let Some(i) = self.pending.iter().position(|p| *p == sent) {
            self.pending.remove(i);
        }
        if quota.limited {
            // The provider says when its count allows calls again (Xero: the window's end); an
            // absurd Retry-After is held a day at most.
            let wait = quota
                .retry_after
                .unwrap_or(DEFAULT_RETRY)
                .min(Duration::from_secs(86_400));
            self.hold(now + wait);
            return;
        }
        let Some(remaining) = quota.remaining else {
            return;
        };
        match self.counted {
            // An answer overtaken by a later call's count (calls in flight together) says less.
            Some((last, _, _)) if sent < last => return,
            None => {
                // The first count: this call's window started by `now` (sooner, if known).
                self.current_start = Some(self.latest_start(now));
            }
            Some((prev_sent, _, prev_remaining)) => {
                // Within one window the count falls with each call the provider counts. Between
                // two consecutive calls (none in between), a count as high as the last one means
                // a window started after the last call went and before this one came back.
                let consecutive = !self.sent.iter().any(|s| *s > prev_sent && *s < sent);
                if self.learns && consecutive && remaining >= prev_remaining {
                    self.learn(Band {
                        lo: prev_sent,
                        hi: now,
                    });
                    self.current_start = Some(self.latest_start(now));
                }
            }
        }
        self.counted = Some((sent, now, remaining));
    }

    /// The latest a window holding a call answered at `now` can have started: `now`, or sooner
    /// when the alignment is known.
    fn latest_start(&self, now: Instant) -> Instant {
        self.window_start(now).map_or(now, |s| s.min(now))
    }

    /// Nothing goes before `until` (a `Retry-After`, a spent daily limit).
    pub fn hold(&mut self, until: Instant) {
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        self.tokens = self.tokens.min(0.0);
    }

    /// The latest a window could have started at or before `at`, once the alignment is known.
    pub fn window_start(&self, at: Instant) -> Option<Instant> {
        let band = self.band?;
        let w = self.limit.window;
        let k = whole_windows(band.lo, at, w)?;
        Some(band.hi + w * k)
    }

    /// How uncertain the learned alignment is (the width of the band window starts lie in).
    pub fn alignment_error(&self) -> Option<Duration> {
        self.band.map(|b| b.hi - b.lo)
    }

    /// Whether window starts are known to within a tenth of a window.
    fn learned(&self) -> bool {
        self.band
            .is_some_and(|b| b.hi - b.lo <= self.limit.window / 10)
    }

    fn per_call(&self) -> Duration {
        self.limit.window / self.limit.per_window
    }

    fn silent_window(&self) -> Duration {
        self.limit.window + self.limit.window / 50
    }

    fn tokens_at(&self, at: Instant) -> f64 {
        let cap = BURST.min(f64::from(self.limit.per_window));
        match self.refilled {
            None => cap,
            Some(last) => {
                let elapsed = at.saturating_duration_since(last).as_secs_f64();
                (self.tokens + elapsed / self.per_call().as_secs_f64()).min(cap)
            }
        }
    }

    /// When the window that counted the call sent at `sent` and answered at `answered` ends, at
    /// the latest: a window after that window's start, once a start was seen; else a window after
    /// the answer.
    fn window_end(&self, sent: Instant, answered: Instant) -> Instant {
        let w = self.limit.window;
        match self.current_start {
            Some(start) if start + w > sent => (start + w).min(answered + w),
            _ => answered + w,
        }
    }

    /// Narrows the band with one observation of a window start in `seen`. Only an observation
    /// that can hold just one of the band's copies (one per window) narrows it: one that could
    /// hold two says nothing about which.
    fn learn(&mut self, seen: Band) {
        let w = self.limit.window;
        if seen.hi - seen.lo >= w {
            return; // As wide as a window: a start is in it, but anywhere.
        }
        let Some(b) = self.band else {
            self.band = Some(seen);
            return;
        };
        // The band's copies that meet the observation.
        let last = match whole_windows(b.lo, seen.hi, w) {
            Some(k) => k,
            None => {
                self.band = Some(seen); // From before the band: start again from this.
                return;
            }
        };
        let meets = |k: u32| {
            let (lo, hi) = (b.lo + w * k, b.hi + w * k);
            (lo <= seen.hi && seen.lo <= hi).then_some((lo.max(seen.lo), hi.min(seen.hi)))
        };
        let found: Vec<(Instant, Instant)> =
            (last.saturating_sub(1)..=last).filter_map(meets).collect();
        self.band = match found.as_slice() {
            [(lo, hi)] => Some(Band { lo: *lo, hi: *hi }),
            // Two copies: ambiguous, nothing learned.
            [_, _] => Some(b),
            // None: inconsistent (the provider's clock moved); start again from this.
            _ => Some(seen),
        };
    }
}

/// How many whole windows from `from` to `to` (`None` when `to` is before `from`).
fn whole_windows(from: Instant, to: Instant, window: Duration) -> Option<u32> {
    let span = to.checked_duration_since(from)?;
    Some((span.as_nanos() / window.as_nanos().max(1)) as u32)
}

/// A budget shared by several connections' workers (Xero: 10,000 calls a minute per app, across
/// all its organisations). Taking a call is one step, so two workers never both take the last one.
/// Kept in memory here; a store shared by several proxies can keep it instead.
pub trait Allowance: Send + Sync {
    /// Takes a call now if one may go (`Ok`), else answers when to ask again.
    fn try_take(&self, now: Instant) -> Result<(), Instant>;
    /// The answer to a call taken at `sent`.
    fn answered(&self, sent: Instant, now: Instant, quota: Quota);
}

/// An allowance kept in this process.
pub struct LocalAllowance(std::sync::Mutex<Pacer>);

impl LocalAllowance {
    pub fn new(limit: Limit) -> Self {
        Self(std::sync::Mutex::new(Pacer::concurrent(limit)))
    }
}

impl Allowance for LocalAllowance {
    fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let mut pacer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = pacer.ready_at(now);
        if at > now {
            return Err(at);
        }
        pacer.sent(now);
        Ok(())
    }

    fn answered(&self, sent: Instant, now: Instant, quota: Quota) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered(sent, now, quota);
    }
}

/// Waits until a call of `cost` may go under both the connection's pacer and the shared
/// allowance, and takes it from both: answers when it went.
pub async fn take(pacer: &mut Pacer, app: &dyn Allowance, cost: Cost) -> Instant {
    loop {
        let now = Instant::now();
        let ready = pacer.ready_for(cost, now);
        if ready > now {
            tokio::time::sleep_until(ready.into()).await;
            continue;
        }
        match app.try_take(now) {
            Ok(()) => {
                pacer.sent_as(cost, now);
                return now;
            }
            Err(at) => tokio::time::sleep_until(at.into()).await,
        }
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    /// A provider counting calls in fixed windows that start at `offset` (from `t0`), answering
    /// each with the calls left (when `tells`), `rtt` after it was sent.
    pub struct Provider {
        pub t0: Instant,
        pub offset: Duration,
        limit: Limit,
        tells: bool,
        window: u64,
        used: u32,
        pub refused: u32,
        pub counts: Vec<u32>,
    }

    impl Provider {
        pub fn new(t0: Instant, offset: Duration, limit: Limit, tells: bool) -> Self {
            Self {
                t0,
                offset,
                limit,
                tells,
                window: u64::MAX,
                used: 0,
                refused: 0,
                counts: Vec::new(),
            }
        }

        pub fn window_of(&self, at: Instant) -> u64 {
            let since = (at - self.t0 + self.limit.window - self.offset).as_nanos();
            (since / self.limit.window.as_nanos()) as u64
        }

        pub fn start_of(&self, window: u64) -> Instant {
            self.t0 + self.offset + self.limit.window * window as u32 - self.limit.window
        }

        /// Receives a call at `at`: its answer.
        pub fn receive(&mut self, at: Instant) -> Quota {
            let w = self.window_of(at);
            if w != self.window {
                if self.window != u64::MAX {
                    self.counts.push(self.used);
                }
                self.window = w;
                self.used = 0;
            }
            // Every call counts, refused or not: `counts` shows what each window was sent.
            self.used += 1;
            if self.used > self.limit.per_window {
                self.refused += 1;
                return Quota {
                    remaining: self.tells.then_some(0),
                    limited: true,
                    retry_after: Some(Duration::from_secs(3)),
                };
            }
            Quota {
                remaining: self.tells.then_some(self.limit.per_window - self.used),
                ..Quota::default()
            }
        }
    }

    /// Sends calls one after another, as a connection's worker does, for `span`: each arrives
    /// `latency(i)` after it goes and is answered `2 × latency(i)` after. Answers the calls made.
    pub fn drive(
        pacer: &mut Pacer,
        provider: &mut Provider,
        start: Instant,
        span: Duration,
        latency: impl Fn(usize) -> Duration,
    ) -> usize {
        let mut now = start;
        let mut calls = 0;
        while now < start + span {
            now = pacer.ready_at(now);
            if now >= start + span {
                break;
            }
            pacer.sent(now);
            let lat = latency(calls);
            let quota = provider.receive(now + lat);
            let back = now + lat * 2;
            pacer.answered(now, back, quota);
            now = back;
            calls += 1;
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    const MINUTE: Limit = Limit {
        per_window: 60,
        window: Duration::from_secs(60),
    };

    #[test]
    fn the_windows_alignment_is_learned_within_two_windows() {
        let t0 = Instant::now();
        let offset = Duration::from_millis(23_700);
        let mut provider = Provider::new(t0, offset, MINUTE, true);
        let mut pacer = Pacer::new(MINUTE);
        drive(&mut pacer, &mut provider, t0, MINUTE.window * 2, |_| {
            Duration::from_millis(40)
        });
        let error = pacer.alignment_error().expect("learned");
        assert!(
            error <= Duration::from_millis(1_200),
            "known to within about a call's spacing: {error:?}"
        );
        let now = t0 + MINUTE.window * 2;
        let learned = pacer.window_start(now).unwrap();
        let truth = provider.start_of(provider.window_of(now));
        assert!(
            learned >= truth && learned - truth <= error,
            "the latest start it allows is the true one or just after: {:?} after",
            learned - truth
        );
        assert_eq!(provider.refused, 0);
    }

    #[test]
    fn a_provider_that_counts_is_used_to_its_limit_without_a_429() {
        let t0 = Instant::now();
        let mut provider = Provider::new(t0, Duration::from_millis(41_300), MINUTE, true);
        let mut pacer = Pacer::new(MINUTE);
        // Jitter: arrival after 5 to 245 ms.
        let calls = drive(&mut pacer, &mut provider, t0, MINUTE.window * 10, |i| {
            Duration::from_millis(5 + (i as u64 * 37 % 241))
        });
        assert_eq!(provider.refused, 0, "no 429");
        // Ten windows of 60 at most: all but the spacing of a call or two.
        assert!(
            calls >= 590,
            "{calls} calls in ten windows: {:?}",
            provider.counts
        );
    }

    #[test]
    fn a_provider_that_says_nothing_never_gets_more_than_its_limit_in_a_window() {
        for offset_ms in [0, 1, 17_000, 59_999] {
            let t0 = Instant::now();
            let mut provider = Provider::new(t0, Duration::from_millis(offset_ms), MINUTE, false);
            let mut pacer = Pacer::new(MINUTE);
            // Arrival jitter up to 1 s, within the 2% margin.
            let calls = drive(&mut pacer, &mut provider, t0, MINUTE.window * 10, |i| {
                Duration::from_millis(i as u64 * 7919 % 1_000)
            });
            assert_eq!(provider.refused, 0, "offset {offset_ms} ms: no 429");
            assert!(
                provider.counts.iter().all(|c| *c <= MINUTE.per_window),
                "{:?}",
                provider.counts
            );
            assert!(calls >= 570, "{calls} calls in ten windows (98% of 600)");
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(MINUTE);
        pacer.sent(t0);
        pacer.answered(
            t0,
            t0 + Duration::from_millis(50),
            Quota {
                remaining: Some(0),
                limited: true,
                retry_after: Some(Duration::from_secs(7)),
            },
        );
        let next = pacer.ready_at(t0 + Duration::from_millis(60));
        assert!(next >= t0 + Duration::from_millis(7_050), "{:?}", next - t0);
        // Without a Retry-After: a few seconds all the same.
        let mut pacer = Pacer::new(MINUTE);
        pacer.sent(t0);
        pacer.answered(
            t0,
            t0,
            Quota {
                limited: true,
                ..Quota::default()
            },
        );
        assert!(pacer.ready_at(t0) >= t0 + DEFAULT_RETRY);
    }

    #[test]
    fn a_spent_window_is_waited_out_and_no_longer() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(MINUTE);
        // Learned: windows start at t0 + 10 s (within 100 ms).
        pacer.band = Some(Band {
            lo: t0 + Duration::from_millis(9_900),
            hi: t0 + Duration::from_secs(10),
        });
        // Another client spent the window: the count says 0 at t0 + 30 s.
        let at = t0 + Duration::from_secs(30);
        pacer.sent(at);
        pacer.answered(
            at,
            at + Duration::from_millis(20),
            Quota {
                remaining: Some(0),
                ..Quota::default()
            },
        );
        let next = pacer.ready_at(at + Duration::from_millis(20));
        assert_eq!(next, t0 + Duration::from_secs(70), "the window's end");
    }
}
#[cfg(test)]
mod rough_traffic {
    use super::tests_support::*;
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const LIMIT: Limit = Limit {
        per_window: 60,
        window: Duration::from_secs(60),
    };

    /// Bursts of calls with idle gaps of up to two windows between them, some calls lost on the
    /// way (the provider may or may not have counted them): never a 429.
    #[test]
    fn idle_gaps_and_lost_calls_never_cause_a_429() {
        for seed in 0..20u64 {
            let t0 = Instant::now();
            let offset = Duration::from_millis(1_000 + seed * 2_917 % 59_000);
            let mut provider = Provider::new(t0, offset, LIMIT, true);
            let mut pacer = Pacer::new(LIMIT);
            let mut now = t0;
            let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut next = || {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                rng >> 33
            };
            for _ in 0..40 {
                // A burst of up to 150 calls, then a pause.
                for _ in 0..(next() % 150) {
                    now = pacer.ready_at(now);
                    pacer.sent(now);
                    let latency = Duration::from_millis(5 + next() % 300);
                    match next() % 20 {
                        // Lost before it arrived: never counted, never answered.
                        0 => now += latency,
                        // Arrived and counted, but the answer was lost.
                        1 => {
                            provider.receive(now + latency);
                            now += latency * 2;
                        }
                        _ => {
                            let quota = provider.receive(now + latency);
                            pacer.answered(now, now + latency * 2, quota);
                            now += latency * 2;
                        }
                    }
                }
                now += Duration::from_millis(next() % 120_000);
            }
            assert_eq!(provider.refused, 0, "seed {seed}: {:?}", provider.counts);
        }
    }

    /// A budget shared by workers with several calls in flight at once (the app's allowance):
    /// answers come back out of order, and the count still keeps every window at its limit.
    #[test]
    fn calls_in_flight_together_never_pass_the_count() {
        for seed in 0..10u64 {
            let t0 = Instant::now();
            let mut provider =
                Provider::new(t0, Duration::from_millis(7_000 + seed * 3_001), LIMIT, true);
            let allowance = LocalAllowance::new(LIMIT);
            // Answers due: (when, sent, the provider's answer).
            let mut due: BinaryHeap<Reverse<(Instant, Instant, u32, bool)>> = BinaryHeap::new();
            let mut now = t0;
            let mut i = 0u64;
            while now < t0 + LIMIT.window * 10 {
                // Deliver every answer due by now.
                while let Some(Reverse((at, sent, left, limited))) = due.peek().copied() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    allowance.answered(
                        sent,
                        at,
                        Quota {
                            remaining: Some(left),
                            limited,
                            retry_after: limited.then_some(Duration::from_secs(3)),
                        },
                    );
                }
                if due.len() < 8 {
                    match allowance.try_take(now) {
                        Ok(()) => {
                            i += 1;
                            let latency = Duration::from_millis(20 + (i * 7919 + seed) % 400);
                            let quota = provider.receive(now + latency);
                            due.push(Reverse((
                                now + latency * 2,
                                now,
                                quota.remaining.unwrap_or(0),
                                quota.limited,
                            )));
                            continue;
                        }
                        Err(at) => now = at.min(now + Duration::from_millis(10)),
                    }
                } else {
                    now += Duration::from_millis(10);
                }
            }
            assert_eq!(provider.refused, 0, "seed {seed}: {:?}", provider.counts);
            // Not learning the alignment costs some windows' calls, never a 429.
            let made: u32 = provider.counts.iter().sum();
            assert!(
                made >= 300,
                "{made} calls in ten windows: {:?}",
                provider.counts
            );
        }
    }
}

#[cfg(test)]
mod short_windows {
    use super::tests_support::*;
    use super::*;

    /// The delivery benchmark's shape (60 calls a 2-second window, calls of 1 to 6 ms): from the
    /// second window on, every window is used to its limit, whatever its alignment.
    #[test]
    fn every_window_after_the_first_is_used_to_its_limit() {
        let limit = Limit {
            per_window: 60,
            window: Duration::from_secs(2),
        };
        for seed in 0..5u64 {
            let t0 = Instant::now();
            let offset = Duration::from_millis(700 + seed * 311);
            let mut provider = Provider::new(t0, offset, limit, true);
            let mut pacer = Pacer::new(limit);
            drive(
                &mut pacer,
                &mut provider,
                t0,
                Duration::from_secs(20),
                |i| Duration::from_millis(1 + ((i as u64 * 7919 + seed * 13) % 6)),
            );
            assert_eq!(provider.refused, 0);
            assert!(
                provider.counts[1..].iter().all(|c| *c == 60),
                "offset {offset:?}: {:?}",
                provider.counts
            );
        }
    }
}

#[cfg(test)]
mod longer_windows {
    use super::*;

    /// Calls made as fast as `pacer` lets calls of `cost(i)` go, for `span` from `t0`.
    fn calls(
        pacer: &mut Pacer,
        t0: Instant,
        span: Duration,
        cost: impl Fn(usize) -> Cost,
    ) -> Vec<(Instant, Cost)> {
        let mut out = Vec::new();
        let mut now = t0;
        loop {
            let c = cost(out.len());
            now = pacer.ready_for(c, now);
            if now >= t0 + span {
                return out;
            }
            pacer.sent_as(c, now);
            out.push((now, c));
            now += Duration::from_millis(1);
        }
    }

    /// The most calls any fixed window of `window`, starting at any of a spread of alignments,
    /// saw.
    fn busiest(times: &[Instant], t0: Instant, window: Duration) -> usize {
        (0..50u32)
            .map(|k| {
                let offset = window * k / 50;
                let mut counts = std::collections::HashMap::<u128, usize>::new();
                for t in times {
                    let at = (*t - t0 + offset).as_nanos() / window.as_nanos();
                    *counts.entry(at).or_default() += 1;
                }
                counts.values().copied().max().unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    /// HubRise's shape, scaled: 10 a "minute" of 1 s, 25 an "hour" of 10 s, 40 a "day" of 30 s.
    fn hubrise() -> Pacer {
        let second = Duration::from_secs(1);
        Pacer::new(Limit {
            per_window: 10,
            window: second,
        })
        .with(
            &[
                Limit {
                    per_window: 25,
                    window: second * 10,
                },
                Limit {
                    per_window: 40,
                    window: second * 30,
                },
            ],
            Some(Limit {
                per_window: 2,
                window: second,
            }),
        )
    }

    #[test]
    fn no_window_however_aligned_sees_more_than_its_limit_and_the_longest_is_used_to_it() {
        let t0 = Instant::now();
        let mut pacer = hubrise();
        let span = Duration::from_secs(120);
        let made = calls(&mut pacer, t0, span, |_| Cost::Light);
        let times: Vec<Instant> = made.iter().map(|(t, _)| *t).collect();
        assert!(busiest(&times, t0, Duration::from_secs(1)) <= 10);
        assert!(busiest(&times, t0, Duration::from_secs(10)) <= 25);
        assert!(busiest(&times, t0, Duration::from_secs(30)) <= 40);
        // The day binds: 40 each 30 s, less a slice's margin per window.
        assert!(
            made.len() >= 4 * 40 * 95 / 100,
            "{} calls in 120 s",
            made.len()
        );
    }

    #[test]
    fn heavy_calls_keep_to_their_own_limit_and_light_ones_do_not_wait_for_them() {
        let t0 = Instant::now();
        let mut pacer = hubrise();
        // Every call heavy: two a second, however many light ones the minute allows.
        let made = calls(&mut pacer, t0, Duration::from_secs(5), |_| Cost::Heavy);
        let times: Vec<Instant> = made.iter().map(|(t, _)| *t).collect();
        assert!(
            busiest(&times, t0, Duration::from_secs(1)) <= 2,
            "{times:?}"
        );
        assert!(made.len() >= 8, "{}", made.len());
        // The heavy limit spent, a light call still goes at once.
        let now = *times.last().unwrap();
        assert!(pacer.ready_for(Cost::Heavy, now) > now);
        assert_eq!(pacer.ready_for(Cost::Light, now), now);
    }

    #[test]
    fn a_tally_forgets_calls_a_window_and_a_slice_after_their_slice() {
        let t0 = Instant::now();
        let limit = Limit {
            per_window: 2,
            window: Duration::from_secs(64),
        };
        let mut tally = Tally::new(limit);
        tally.sent(t0);
        tally.sent(t0 + Duration::from_millis(500));
        // Both in the first one-second slice: free again 65 s after it started.
        assert_eq!(
            tally.ready_at(t0 + Duration::from_secs(2)),
            t0 + Duration::from_secs(65)
        );
        assert_eq!(
            tally.ready_at(t0 + Duration::from_secs(65)),
            t0 + Duration::from_secs(65)
        );
        tally.sent(t0 + Duration::from_secs(65));
        assert_eq!(
            tally.ready_at(t0 + Duration::from_secs(65)),
            t0 + Duration::from_secs(65)
        );
    }
}
