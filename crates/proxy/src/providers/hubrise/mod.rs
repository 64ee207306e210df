//! HubRise, restaurants' order hub: its OAuth server (`oauth`: browser consent, a static token
//! per client and location, revocation) and, next, its orders. See
//! `../shared/reference/HUBRISE-FACTS.md`.
//!
//! A till pairs with a HubRise location through the same pages as Xero; the token is kept in the
//! vault (never refreshed; refused, the connection needs connecting again after one confirming
//! `GET /location`); orders go one call each (`delivery`), never twice (`private_ref`); the
//! location's callback tells the till when an order's status changes in HubRise (`webhooks`).

pub mod api;
pub mod delivery;
pub mod oauth;
pub mod webhooks;

use std::time::Duration;

use crate::delivery::pacer::Limit;
use crate::providers::{Consent, Grant, Limits, MappingTarget, Profile};
use crate::settings::Settings;

/// HubRise, as the seam sees it.
pub struct HubRise;

impl Profile for HubRise {
    const PROVIDER: ledgerlink_wire::Provider = ledgerlink_wire::Provider::HubRise;
    /// The person logs in at HubRise, chooses the location and comes back with a code.
    const CONSENT: Consent = Consent::Browser;
    /// The token never expires and there is no refresh token.
    const GRANT: Grant = Grant::Static;
    /// Orders go as the till made them: nothing is mapped.
    const MAPPING_TARGETS: &'static [MappingTarget] = &[];

    fn limits(settings: &Settings) -> Limits {
        let l = settings.providers.hubrise.limits;
        let minute = Duration::from_secs(l.minute_secs.max(1));
        Limits {
            // 500 calls a minute per connection; 2,500 an hour and 10,000 a day bind when
            // the minute's pace is kept up.
            per_window: l.per_minute,
            // No app-wide limit is published.
            app_per_window: 1_000_000,
            window: minute,
            // One order per call: HubRise has no batch create.
            batch: 1,
            max_body_bytes: 1_000_000,
            // No idempotency key: an unknown outcome is always looked up by `private_ref`.
            replay_window: None,
            longer: vec![
                Limit {
                    per_window: l.per_hour,
                    window: minute * 60,
                },
                Limit {
                    per_window: l.per_day,
                    window: minute * 1_440,
                },
            ],
            // Order lists (the lookups by `private_ref`): ten a minute.
            heavy: Some(Limit {
                per_window: l.heavy_per_minute,
                window: minute,
            }),
        }
    }
}
