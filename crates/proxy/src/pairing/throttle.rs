//! Brute-force protection for user codes: wrong entries lock code entry for a browser session, and
//! every entry counts against the client address (IPv6 by /64), so dropping cookies or hopping
//! addresses inside one network buys no extra guesses. Pairing creation is limited per address too,
//! and so are wrong operator tokens. Memory is bounded: past the cap, new addresses are refused
//! (fail closed) until the window turns.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::settings::{AdminSettings, PairingSettings};

/// Most addresses or sessions remembered at once.
const CAP: usize = 100_000;

#[derive(Debug, Default)]
pub struct Throttle {
    wrong_by_session: Mutex<HashMap<Vec<u8>, u32>>,
    codes_by_address: Mutex<HashMap<IpAddr, (i64, u32)>>,
    pairings_by_address: Mutex<HashMap<IpAddr, (i64, u32)>>,
    admin_failures_by_address: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

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

fn count(
    map: &Mutex<HashMap<IpAddr, (i64, u32)>>,
    address: IpAddr,
    window: i64,
    limit: u32,
) -> bool {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = bucket(address);
    if map.len() >= CAP && !map.contains_key(&key) {
        map.retain(|_, (w, _)| *w == window);
        if map.len() >= CAP {
            tracing::warn!("throttle table full: refusing new addresses until the window turns");
            return false;
        }
    }
    let entry = map.entry(key).or_insert((window, 0));
    if entry.0 != window {
        *entry = (window, 0);
    }
    if entry.1 >= limit {
        return false;
    }
    entry.1 += 1;
    true
}

impl Throttle {
    pub fn session_locked(&self, session: &[u8], settings: &PairingSettings) -> bool {
        let map = self
            .wrong_by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(session)
            .is_some_and(|n| *n >= settings.max_wrong_codes_per_session)
    }

    pub fn record_wrong(&self, session: &[u8], settings: &PairingSettings) {
        let mut map = self
            .wrong_by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAP && !map.contains_key(session) {
            // Forget sessions that are not locked before forgetting a lock.
            map.retain(|_, n| *n >= settings.max_wrong_codes_per_session);
        }
        *map.entry(session.to_vec()).or_insert(0) += 1;
    }

    fn window(now: DateTime<Utc>, settings: &PairingSettings) -> i64 {
        now.timestamp()
            .div_euclid(settings.address_window_secs.max(1) as i64)
    }

    /// Counts one code entry from `address`; false when the address is over its limit this window.
    pub fn address_attempt(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> bool {
        count(
            &self.codes_by_address,
            address,
            Self::window(now, settings),
            settings.max_code_attempts_per_address,
        )
    }

    /// Whether `address` presented too many wrong operator tokens this window (then every operator
    /// call from it is refused, right token or not, until the window turns).
    pub fn admin_blocked(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &AdminSettings,
    ) -> bool {
        let window = now
            .timestamp()
            .div_euclid(settings.window_secs.max(1) as i64);
        let map = self
            .admin_failures_by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.get(&bucket(address))
            .is_some_and(|(w, n)| *w == window && *n >= settings.max_failures_per_address)
    }

    /// Counts one wrong operator token from `address`.
    pub fn admin_failed(&self, address: IpAddr, now: DateTime<Utc>, settings: &AdminSettings) {
        let window = now
            .timestamp()
            .div_euclid(settings.window_secs.max(1) as i64);
        count(&self.admin_failures_by_address, address, window, u32::MAX);
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
    pub fn pairing_started(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> bool {
        count(
            &self.pairings_by_address,
            address,
            Self::window(now, settings),
            settings.max_pairings_per_address,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_codes_lock_the_session_and_the_address_limit_is_per_window() {
        let settings = PairingSettings {
            max_code_attempts_per_address: 3,
            address_window_secs: 60,
            ..Default::default()
        };
        let t = Throttle::default();
        for _ in 0..4 {
            t.record_wrong(b"s1", &settings);
        }
        assert!(!t.session_locked(b"s1", &settings));
        t.record_wrong(b"s1", &settings);
        assert!(t.session_locked(b"s1", &settings));
        assert!(!t.session_locked(b"s2", &settings));

        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = DateTime::from_timestamp(6_000, 0).unwrap();
        assert!((0..3).all(|_| t.address_attempt(ip, now, &settings)));
        assert!(!t.address_attempt(ip, now, &settings));
        assert!(t.address_attempt(ip, now + chrono::Duration::seconds(60), &settings));
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_a_budget() {
        let settings = PairingSettings {
            max_code_attempts_per_address: 2,
            ..Default::default()
        };
        let t = Throttle::default();
        let now = DateTime::from_timestamp(6_000, 0).unwrap();
        assert!(t.address_attempt("2001:db8:1:2::1".parse().unwrap(), now, &settings));
        assert!(t.address_attempt("2001:db8:1:2::ffff".parse().unwrap(), now, &settings));
        assert!(!t.address_attempt("2001:db8:1:2:abcd::9".parse().unwrap(), now, &settings));
        assert!(t.address_attempt("2001:db8:1:3::1".parse().unwrap(), now, &settings));
    }
}
