//! Xero: its identity server (`oauth`), its Accounting API (`api`: each call authorised with the
//! connection's access token and `xero-tenant-id`, its answer's rate-limit headers read into
//! [`Quotas`](crate::providers::Quotas)), how documents become its calls (`delivery`), its
//! webhooks, and what the proxy keeps of each organisation (`timezone`: the zone Xero names,
//! mapped to IANA).

pub mod api;
pub mod books;
pub mod delivery;
pub mod oauth;
pub mod timezone;
pub mod webhooks;

use std::time::Duration;

use crate::providers::{Consent, Grant, Limits, MappingTarget, Profile};
use crate::settings::Settings;

/// Xero, as the seam sees it.
pub struct Xero;

impl Profile for Xero {
    const PROVIDER: ledgerlink_wire::Provider = ledgerlink_wire::Provider::Xero;
    /// The person signs in at Xero, picks organisations and comes back with a code.
    const CONSENT: Consent = Consent::Browser;
    /// 30-minute access tokens; a 60-day refresh token replaced at every refresh.
    const GRANT: Grant = Grant::RotatingRefresh;
    /// Sales categories and tenders map to account codes and tax types.
    const MAPPING_TARGETS: &'static [MappingTarget] =
        &[MappingTarget::Account, MappingTarget::TaxRate];

    fn limits(settings: &Settings) -> Limits {
        let d = settings.delivery;
        Limits {
            // 60 calls a minute per organisation, 10,000 per app (the settings say otherwise only
            // in tests and benchmarks).
            per_window: d.tenant_per_window,
            app_per_window: d.app_per_window,
            window: Duration::from_secs(d.window_secs.max(1)),
            // Xero's advice: 50 documents per call; its request limit is 3.5 MB (the envelope
            // and query take the rest).
            batch: 50,
            max_body_bytes: 3_400_000,
            replay_window: Some(Duration::from_secs(d.replay_window_secs)),
            // Its day (5,000 calls) is counted by Xero and said in every answer.
            longer: Vec::new(),
            heavy: None,
        }
    }
}
