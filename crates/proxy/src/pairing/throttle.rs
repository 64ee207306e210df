//! Brute-force protection for user codes: wrong entries lock code entry for a browser session, and
//! every entry counts against the client address, so dropping cookies does not buy more guesses.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::settings::PairingSettings;

#[derive(Debug, Default)]
pub struct Throttle {
    wrong_by_session: Mutex<HashMap<Vec<u8>, u32>>,
    by_address: Mutex<HashMap<IpAddr, (i64, u32)>>,
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

    pub fn record_wrong(&self, session: &[u8]) {
        let mut map = self
            .wrong_by_session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        *map.entry(session.to_vec()).or_insert(0) += 1;
    }

    /// Counts one code entry from `address`; false when the address is over its limit this window.
    pub fn address_attempt(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
        settings: &PairingSettings,
    ) -> bool {
        let window = now
            .timestamp()
            .div_euclid(settings.address_window_secs.max(1) as i64);
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (w, _)| *w == window);
        }
        let entry = map.entry(address).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= settings.max_code_attempts_per_address {
            return false;
        }
        entry.1 += 1;
        true
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
            t.record_wrong(b"s1");
        }
        assert!(!t.session_locked(b"s1", &settings));
        t.record_wrong(b"s1");
        assert!(t.session_locked(b"s1", &settings));
        assert!(!t.session_locked(b"s2", &settings));

        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = DateTime::from_timestamp(6_000, 0).unwrap();
        assert!((0..3).all(|_| t.address_attempt(ip, now, &settings)));
        assert!(!t.address_attempt(ip, now, &settings));
        assert!(t.address_attempt(ip, now + chrono::Duration::seconds(60), &settings));
    }
}
