//! Brute-force protection for user codes: wrong entries lock code entry for a browser session, and
//! every entry counts against the client address (IPv6 by /64), so dropping cookies or hopping
//! addresses inside one network buys no extra guesses. Pairing creation is limited per address too,
//! and so are wrong operator tokens, each in a sliding window (`store::throttles`: no budget
//! spent twice around a window's turn). The counts are kept in the database (`ThrottleStore`), so a
//! client spreading its guesses over several proxies has one budget, not one per proxy; the sweep
//! forgets counts nobody touched for a while.
//!
//! When the database cannot be asked, the answer is no (fail closed): an attempt that cannot be
//! counted is not allowed.

use chrono::{DateTime, Utc};
use std::net::IpAddr;

use crate::settings::{AdminSettings, PairingSettings};
use crate::store::{Storage, StoreError};

pub struct Throttle {
    storage: Storage,
}

/// What is counted: each its own budget.
const WRONG_CODES: &str = "wrong_code_session";
const CODE_ENTRIES: &str = "code_entry_address";
const PAIRINGS: &str = "pairing_address";
const ADMIN_FAILURES: &str = "admin_failure_address";

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (one customer's network).
pub fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

/// The numbered window of `len_secs` that `now` falls in, and how far into it (0 to 1).
fn numbered(now: DateTime<Utc>, len_secs: u64) -> (i64, f64) {
    let len_ms = len_secs.max(1) as i64 * 1000;
    let ms = now.timestamp_millis();
    (
        ms.div_euclid(len_ms),
        ms.rem_euclid(len_ms) as f64 / len_ms as f64,
    )
}

fn key(address: IpAddr) -> Vec<u8> {
    bucket(address).to_string().into_bytes()
}

impl Throttle {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    pub async fn session_locked(
        &self,
        session: &[u8],
        settings: &PairingSettings,
    ) -> Result<bool, StoreError> {
        let wrong = self
            .storage
            .throttles()
            .attempts(WRONG_CODES, session, 0, 0.0)
            .await?;
        Ok(wrong >= f64::from(settings.max_wrong_codes_per_session))
    }

    pub async fn record_wrong(&self, session: &[u8], now: DateTime<Utc>) -> Result<(), StoreError> {
        // A session's wrong codes never turn over (window 0): it stays locked until swept.
        self.storage
            .throttles()
            .count_attempt(WRONG_CODES, session, 0, 0.0, u32::MAX, now)
            .await
            .map(|_| ())
    }

    fn window(now: DateTime<Utc>, settings: &PairingSettings) -> (i64, f64) {
        numbered(now, settings.address_window_secs)
    }

    fn admin_window(now: DateTime<Utc>, settings: &AdminSettings) -> (i64, f64) {
        numbered(now, settings.window_secs)
    }

    /// Counts one code entry from `address`; false when the address is over its limit this window.
    pub async fn address_attempt(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> Result<bool, StoreError> {
        let (window, elapsed) = Self::window(now, settings);
        self.storage
            .throttles()
            .count_attempt(
                CODE_ENTRIES,
                &key(address),
                window,
                elapsed,
                settings.max_code_attempts_per_address,
                now,
            )
            .await
    }

    /// Whether `address` presented too many wrong operator tokens this window (then every operator
    /// call from it is refused, right token or not, until the window turns).
    pub async fn admin_blocked(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &AdminSettings,
    ) -> Result<bool, StoreError> {
        let (window, elapsed) = Self::admin_window(now, settings);
        let failures = self
            .storage
            .throttles()
            .attempts(ADMIN_FAILURES, &key(address), window, elapsed)
            .await?;
        Ok(failures >= f64::from(settings.max_failures_per_address))
    }

    /// Counts one wrong operator token from `address`.
    pub async fn admin_failed(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &AdminSettings,
    ) -> Result<(), StoreError> {
        let (window, elapsed) = Self::admin_window(now, settings);
        self.storage
            .throttles()
            .count_attempt(
                ADMIN_FAILURES,
                &key(address),
                window,
                elapsed,
                u32::MAX,
                now,
            )
            .await
            .map(|_| ())
    }

    /// Seconds until `now`'s operator window turns (an estimate: the sliding window frees attempts
    /// bit by bit).
    pub fn admin_retry_after(now: DateTime<Utc>, settings: &AdminSettings) -> u64 {
        let len = settings.window_secs.max(1) as i64;
        (len - now.timestamp().rem_euclid(len)) as u64
    }

    /// Seconds until `now`'s pairing window turns.
    pub fn retry_after(now: DateTime<Utc>, settings: &PairingSettings) -> u64 {
        let len = settings.address_window_secs.max(1) as i64;
        (len - now.timestamp().rem_euclid(len)) as u64
    }

    /// Counts one new pairing from `address`; false when it started too many this window.
    pub async fn pairing_started(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> Result<bool, StoreError> {
        let (window, elapsed) = Self::window(now, settings);
        self.storage
            .throttles()
            .count_attempt(
                PAIRINGS,
                &key(address),
                window,
                elapsed,
                settings.max_pairings_per_address,
                now,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn throttle() -> Throttle {
        Throttle::new(Storage::sqlite(SqliteStore::memory().unwrap()))
    }

    #[tokio::test]
    async fn five_wrong_codes_lock_the_session_and_the_address_limit_is_per_window() {
        let settings = PairingSettings {
            max_code_attempts_per_address: 3,
            address_window_secs: 60,
            ..Default::default()
        };
        let t = throttle();
        let now = DateTime::from_timestamp(6_000, 0).unwrap();
        for _ in 0..4 {
            t.record_wrong(b"s1", now).await.unwrap();
        }
        assert!(!t.session_locked(b"s1", &settings).await.unwrap());
        t.record_wrong(b"s1", now).await.unwrap();
        assert!(t.session_locked(b"s1", &settings).await.unwrap());
        assert!(!t.session_locked(b"s2", &settings).await.unwrap());

        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.address_attempt(ip, now, &settings).await.unwrap());
        }
        assert!(!t.address_attempt(ip, now, &settings).await.unwrap());
        // Right after the turn the last window still counts: no fresh budget at the boundary.
        assert!(!t
            .address_attempt(ip, now + chrono::Duration::seconds(61), &settings)
            .await
            .unwrap());
        // Two windows on it has gone.
        assert!(t
            .address_attempt(ip, now + chrono::Duration::seconds(120), &settings)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn ipv6_addresses_in_one_slash_64_share_a_budget() {
        let settings = PairingSettings {
            max_code_attempts_per_address: 2,
            ..Default::default()
        };
        let t = throttle();
        let now = DateTime::from_timestamp(6_000, 0).unwrap();
        let attempt = |a: &str| t.address_attempt(a.parse().unwrap(), now, &settings);
        assert!(attempt("2001:db8:1:2::1").await.unwrap());
        assert!(attempt("2001:db8:1:2::ffff").await.unwrap());
        assert!(!attempt("2001:db8:1:2:abcd::9").await.unwrap());
        assert!(attempt("2001:db8:1:3::1").await.unwrap());
    }
}
