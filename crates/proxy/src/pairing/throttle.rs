//! Brute-force protection for user codes: wrong entries lock code entry for a browser session, and
//! every entry counts against the client address (IPv6 by /64), so dropping cookies or hopping
//! addresses inside one network buys no extra guesses. Pairing creation is limited per address too,
//! and so are wrong operator tokens. The counts are kept in the database (`ThrottleStore`), so a
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
            .attempts(WRONG_CODES, session, 0)
            .await?;
        Ok(wrong >= settings.max_wrong_codes_per_session)
    }

    pub async fn record_wrong(&self, session: &[u8], now: DateTime<Utc>) -> Result<(), StoreError> {
        // A session's wrong codes never turn over (window 0): it stays locked until swept.
        self.storage
            .throttles()
            .count_attempt(WRONG_CODES, session, 0, u32::MAX, now)
            .await
            .map(|_| ())
    }

    fn window(now: DateTime<Utc>, settings: &PairingSettings) -> i64 {
        now.timestamp()
            .div_euclid(settings.address_window_secs.max(1) as i64)
    }

    fn admin_window(now: DateTime<Utc>, settings: &AdminSettings) -> i64 {
        now.timestamp()
            .div_euclid(settings.window_secs.max(1) as i64)
    }

    /// Counts one code entry from `address`; false when the address is over its limit this window.
    pub async fn address_attempt(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> Result<bool, StoreError> {
        self.storage
            .throttles()
            .count_attempt(
                CODE_ENTRIES,
                &key(address),
                Self::window(now, settings),
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
        let failures = self
            .storage
            .throttles()
            .attempts(
                ADMIN_FAILURES,
                &key(address),
                Self::admin_window(now, settings),
            )
            .await?;
        Ok(failures >= settings.max_failures_per_address)
    }

    /// Counts one wrong operator token from `address`.
    pub async fn admin_failed(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &AdminSettings,
    ) -> Result<(), StoreError> {
        self.storage
            .throttles()
            .count_attempt(
                ADMIN_FAILURES,
                &key(address),
                Self::admin_window(now, settings),
                u32::MAX,
                now,
            )
            .await
            .map(|_| ())
    }

    /// Seconds until `now`'s operator window turns.
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
        self.storage
            .throttles()
            .count_attempt(
                PAIRINGS,
                &key(address),
                Self::window(now, settings),
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
        assert!(t
            .address_attempt(ip, now + chrono::Duration::seconds(60), &settings)
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
